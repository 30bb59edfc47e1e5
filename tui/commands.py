"""The `:` command line, parsed into plain commands (k9s style)."""

from __future__ import annotations

from dataclasses import dataclass

VIEWS: dict[str, str] = {
    "nodes": "nodes",
    "node": "nodes",
    "no": "nodes",
    "services": "services",
    "service": "services",
    "svc": "services",
    "events": "events",
    "event": "events",
    "ev": "events",
    "proxy": "proxy",
    "px": "proxy",
    "operator": "operator",
    "op": "operator",
}

HELP = (
    ":nodes  :services  :events  :proxy  :operator  :tasks SERVICE\n"
    ":scale SERVICE N  :drain NODE  :pause NODE  :activate NODE\n"
    ":filter TEXT  :help  :quit"
)


class CommandError(ValueError):
    pass


@dataclass(frozen=True)
class Command:
    name: str  # view | tasks | scale | availability | filter | help | quit
    args: tuple[str, ...] = ()


def parse_command(line: str) -> Command:
    words = line.strip().lstrip(":").split()
    if not words:
        raise CommandError("empty command; try :help")
    head, rest = words[0].lower(), words[1:]
    if head in VIEWS and not rest:
        return Command("view", (VIEWS[head],))
    if head in {"tasks", "task", "ts"}:
        if len(rest) != 1:
            raise CommandError("usage: :tasks SERVICE")
        return Command("tasks", (rest[0],))
    if head == "scale":
        if len(rest) != 2:
            raise CommandError("usage: :scale SERVICE N")
        return Command("scale", (rest[0], rest[1]))
    if head in {"drain", "pause", "activate"}:
        if len(rest) != 1:
            raise CommandError(f"usage: :{head} NODE")
        return Command("availability", (rest[0], head))
    if head == "filter":
        return Command("filter", (" ".join(rest),))
    if head in {"help", "h", "?"}:
        return Command("help")
    if head in {"quit", "q", "q!", "exit"}:
        return Command("quit")
    raise CommandError(f"unknown command {head!r}; try :help")

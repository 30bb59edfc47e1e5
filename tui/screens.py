"""Modal screens: help, scale, availability confirmation."""

from __future__ import annotations

from swarmop.tui.commands import HELP
from swarmop.tui.impact import Impact
from swarmop.tui.model import ServiceRecord
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

KEYS_HELP = """\
[b]Views[/b]    1 nodes  2 services  3 events  4 proxy  5 operator
           enter on a service: its tasks   esc: back
[b]Find[/b]     / filter (words must all match; col:text looks in one column)
           o sort by next column  r reverse  (or click a header)
[b]Actions[/b]  s scale service   d drain  p pause  a activate node
           ctrl+r refresh now   q quit   ? this help
[b]Commands[/b] (press :)
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(KEYS_HELP + HELP, id="help-text")
            yield Button("Close", id="close")

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self.dismiss(None)


class ScaleScreen(ModalScreen[int | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, service: ServiceRecord, target: str) -> None:
        super().__init__()
        self.service = service
        self.target = target

    def compose(self) -> ComposeResult:
        svc = self.service
        with Vertical(id="dialog"):
            yield Label(f"[b]Scale {svc.name}[/b]")
            yield Label(
                f"running {svc.running}, spec {svc.spec_replicas}, "
                f"desired {svc.desired_replicas.describe()}"
            )
            yield Label(f"writes the desired count to {self.target}")
            yield Input(
                placeholder=f"replicas (spec now {svc.spec_replicas})",
                type="integer",
                id="replicas",
            )
            yield Label("", id="scale-error")
            with Horizontal(classes="buttons"):
                yield Button("Scale", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def _submit(self) -> None:
        text = self.query_one("#replicas", Input).value.strip()
        if not text.isdigit():
            self.query_one("#scale-error", Label).update("[red]enter a whole number[/red]")
            return
        self.dismiss(int(text))

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmAvailabilityScreen(ModalScreen[bool]):
    BINDINGS = [Binding("escape,n", "cancel", "cancel"), Binding("y", "confirm", "confirm")]

    def __init__(self, impact: Impact, target: str) -> None:
        super().__init__()
        self.impact = impact
        self.target = target

    def compose(self) -> ComposeResult:
        impact = self.impact
        lines = [f"[b]Set {impact.node} to {impact.availability}?[/b]", impact.summary]
        for task in impact.moving[:20]:
            slot = "" if task.slot is None else f".{task.slot}"
            lines.append(f"  moves: {task.service_name}{slot} ({task.id[:12]})")
        if len(impact.moving) > 20:
            lines.append(f"  ... and {len(impact.moving) - 20} more")
        for warning in impact.warnings:
            lines.append(f"[bold yellow]warning:[/] {warning}")
        lines.append(f"writes the desired availability to {self.target}")
        with Vertical(id="dialog"):
            yield Static("\n".join(lines), id="impact")
            with Horizontal(classes="buttons"):
                yield Button(f"{impact.availability.capitalize()} (y)", variant="warning", id="ok")
                yield Button("Cancel (n)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "ok")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

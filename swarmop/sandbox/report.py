"""The text `swarmop sandbox status` prints: what runs, read from the live daemons."""

from __future__ import annotations

from typing import Any

from swarmop.sandbox import consul_agent, dockerd, example
from swarmop.sandbox.images import installed_hash
from swarmop.sandbox.info import IMAGE_TAGS, SandboxInfo
from swarmop.sandbox.leftovers import Leftovers
from swarmop.sandbox.sandbox import Sandbox


def not_up_message(name: str, found: Leftovers, busy: bool) -> str:
    """What `status` and `env` say about a sandbox that is not up.

    A killed `up` or `down` leaves daemons, namespaces and mounts behind with no
    usable state; saying plainly "down" would hide them.
    """
    if busy:
        return (
            f"sandbox {name!r} is not up: an `up` or `down` of it is running now; "
            "ask again when it has finished"
        )
    if not found:
        return f"sandbox {name!r} is down (run `swarmop sandbox up --name {name}`)"
    return (
        f"sandbox {name!r} is not up, but an `up` or `down` that did not finish left "
        f"{found.summary()}: `swarmop sandbox down --name {name}` removes them "
        f"(`swarmop sandbox up --name {name}` removes them and builds the sandbox again)"
    )


def degraded_remedy(name: str) -> str:
    """For a sandbox on record as up whose daemons do not all answer: a node stopped
    on purpose, or the remains of a killed `down`."""
    return (
        f"`swarmop sandbox up --name {name}` builds it again; "
        f"`swarmop sandbox down --name {name}` removes it"
    )


def describe_not_up(sandbox: Sandbox) -> str:
    busy_before = sandbox.busy()
    found = sandbox.leftovers()
    # Asked again: an `up` that started while the leftovers were counted would
    # make its first pieces look like a crash's.
    return not_up_message(sandbox.name, found, busy_before or sandbox.busy())


def _node_lines(info: SandboxInfo) -> list[str]:
    api = dockerd.api_client(info.manager_docker_host, timeout=10)
    try:
        nodes = sorted(api.nodes(), key=lambda node: node["Description"]["Hostname"])
    finally:
        api.close()
    lines = ["nodes:"]
    for node in nodes:
        labels = node["Spec"].get("Labels") or {}
        label_text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        lines.append(
            f"  {node['Description']['Hostname']:<8} {node['Status']['State']:<6} "
            f"{node['Spec']['Availability']:<6} {node['Spec']['Role']:<7} "
            f"{node['Status'].get('Addr', '')}  {label_text}"
        )
    return lines


def _image_lines(info: SandboxInfo) -> list[str]:
    lines = ["images:"]
    for node in info.nodes:
        api = dockerd.api_client(node.docker_host, timeout=10)
        try:
            present = [tag for tag in IMAGE_TAGS.values() if installed_hash(api, tag)]
        except Exception as error:  # a stopped node is reported, not fatal
            present = [f"(cannot ask: {error.__class__.__name__})"]
        finally:
            api.close()
        lines.append(f"  {node.hostname:<8} {' '.join(present) or '(none)'}")
    return lines


def _running_tasks(api: Any, service_id: str) -> int:
    tasks = api.tasks(filters={"service": service_id, "desired-state": "running"})
    return sum(1 for task in tasks if task["Status"]["State"] == "running")


def _service_lines(info: SandboxInfo) -> list[str]:
    api = dockerd.api_client(info.manager_docker_host, timeout=10)
    lines = []
    try:
        for name in (example.WEB_SERVICE, example.DB_SERVICE, example.NGINX_SERVICE):
            found = api.services(filters={"name": name})
            service = next((s for s in found if s["Spec"]["Name"] == name), None)
            if service is None:
                continue
            desired = service["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas", "?")
            running = _running_tasks(api, service["ID"])
            lines.append(f"  {name:<8} {running}/{desired} running")
    finally:
        api.close()
    return ["example services:", *lines] if lines else ["example services: not deployed"]


def status_lines(sandbox: Sandbox) -> tuple[list[str], bool]:
    """Lines to print and whether everything answers."""
    info = sandbox.info()
    if info is None:
        return [describe_not_up(sandbox)], False
    problems = sandbox.problems()
    lines = [
        f"sandbox {info.name!r}: {'up' if not problems else 'DEGRADED'}  subnet {info.subnet}",
        f"  DOCKER_HOST={info.manager_docker_host}",
    ]
    lines += [f"  problem: {problem}" for problem in problems]
    if problems:
        lines.append(f"  {degraded_remedy(info.name)}")
    try:
        lines += _node_lines(info)
    except Exception as error:  # the manager may be the stopped node
        lines.append(f"nodes: manager does not answer ({error.__class__.__name__})")
    leader = "leader elected" if consul_agent.has_leader(info.consul_port) else "NOT answering"
    lines.append(
        f"consul: http://{info.consul_http_addr} ({leader}); from containers in the "
        f"swarm: http://{info.consul_addr_in_swarm}"
    )
    lines += _image_lines(info)
    try:
        lines += _service_lines(info)
    except Exception as error:
        lines.append(f"example services: cannot ask the manager ({error.__class__.__name__})")
    return lines, not problems

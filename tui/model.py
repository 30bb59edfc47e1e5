"""What the TUI shows, as plain records built from plain data.

`build_snapshot` turns the raw JSON the Docker API returns (services, nodes,
tasks) and the Consul keys under the prefix into one `ClusterSnapshot`. Pure:
no client, no widget; every view and test starts from here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from swarmop import status as status_contract
from swarmop.desired import DesiredState, merge_desired
from swarmop.desired.keys import desired_keys_by_object
from swarmop.proxy.publish import AgentStatus, parse_agent_status

NONE_SOURCE = "none"
# An operator that has not resynced for this long is reported as not seen:
# the published info stays in Consul after the process is gone. The operator
# does not publish its resync interval, so this is `swarmop tui
# --operator-stale-after`: three of `swarmop run`'s default 60 s resyncs.
OPERATOR_STALE_AFTER = 180.0


@dataclass(frozen=True)
class Desired:
    """One desired value as the operator would see it, with where it came from."""

    value: str | None
    source: str  # consul | label | default | none
    error: str | None = None

    def describe(self) -> str:
        if self.error is not None:
            return f"invalid ({self.source})"
        if self.value is None:
            return "-"
        return f"{self.value} ({self.source})"


@dataclass(frozen=True)
class Reconcile:
    outcome: str  # ok | pending | error | blocked
    message: str = ""
    retries: int = 0
    last_run: float | None = None


@dataclass(frozen=True)
class NodeRecord:
    id: str
    hostname: str
    role: str
    manager_status: str
    availability: str
    state: str
    address: str
    engine: str
    labels: tuple[tuple[str, str], ...]
    running_tasks: int
    desired_availability: Desired
    reconcile: Reconcile | None = None

    @property
    def drift(self) -> bool:
        wanted = self.desired_availability
        return wanted.error is not None or (
            wanted.value is not None and wanted.value != self.availability
        )


@dataclass(frozen=True)
class ServiceRecord:
    id: str
    name: str
    mode: str  # replicated | global
    spec_replicas: int | None  # None for global services
    running: int
    desired_replicas: Desired
    image: str
    placement: tuple[str, ...]
    proxy_host: str
    labels: tuple[tuple[str, str], ...]
    reconcile: Reconcile | None = None

    @property
    def drift(self) -> bool:
        """The spec differs from what the winning source asks for (or that source is invalid)."""
        wanted = self.desired_replicas
        if wanted.error is not None:
            return True
        return wanted.value is not None and str(self.spec_replicas) != wanted.value

    @property
    def converging(self) -> bool:
        """Swarm has the right spec but not yet the tasks running."""
        return self.spec_replicas is not None and self.running != self.spec_replicas

    @property
    def single_writer_db(self) -> bool:
        labels = dict(self.labels)
        role = labels.get("swarmop.role", "").strip().lower()
        cluster = labels.get("swarmop.db.cluster", "").strip().lower()
        return role == "db" and cluster not in {"true", "yes", "1", "on"}


@dataclass(frozen=True)
class TaskRecord:
    id: str
    service_id: str
    service_name: str
    slot: int | None
    node_id: str
    node_name: str
    state: str
    desired_state: str
    address: str
    error: str
    timestamp: float | None  # Unix seconds of the last status change


@dataclass(frozen=True)
class EventRecord:
    key: str
    time: float
    origin: str  # docker | operator
    kind: str  # service | node | operator | ...
    action: str
    object: str
    message: str


@dataclass(frozen=True)
class ProxyRecord:
    """One proxy service: the config the operator published and each agent's report."""

    service: str
    config: str | None
    config_hash: str | None = None
    agents: Mapping[str, AgentStatus] = field(default_factory=dict)

    def agent_lines(self) -> list[str]:
        """What the proxy view says about each agent beside nginx."""
        lines: list[str] = []
        for name, agent in self.agents.items():
            serves = agent.live_hash[:12] or "nothing yet"
            if self.config_hash and agent.live_hash == self.config_hash:
                serves += " (the published config)"
            elif self.config_hash:
                serves += f" (published: {self.config_hash[:12]})"
            head = f"agent {name}: {agent.state}, serves {serves}"
            lines.append(head + (f", reported {agent.time}" if agent.time else ""))
            if not agent.ok:
                detail = next((part for part in agent.message.splitlines() if part.strip()), "")
                lines.append(f"  refused {agent.hash[:12] or '?'}: {detail or 'no output'}")
            if agent.reload:
                lines.append(f"  last reload: {agent.reload} at {agent.reload_time or '?'}")
            if agent.changed_time:
                parts = [
                    f"{word} {', '.join(names)}"
                    for word, names in (
                        ("added", agent.added),
                        ("removed", agent.removed),
                        ("changed", agent.changed),
                    )
                    if names
                ]
                what = "; ".join(parts) or "no virtual host changed"
                lines.append(f"  last change: {agent.changed_time}: {what}")
        return lines


@dataclass(frozen=True)
class OperatorRecord:
    instance: str
    host: str
    pid: int
    leader: bool
    started: float
    last_resync: float | None

    def seen_recently(self, now: float, stale_after: float = OPERATOR_STALE_AFTER) -> bool:
        last = self.last_resync if self.last_resync is not None else self.started
        return now - last <= stale_after


@dataclass(frozen=True)
class InstanceRecord:
    instance: str
    host: str
    leader: bool


@dataclass(frozen=True)
class ClusterSnapshot:
    nodes: Mapping[str, NodeRecord]
    services: Mapping[str, ServiceRecord]
    tasks: Mapping[str, TaskRecord]
    operator_events: tuple[EventRecord, ...]
    proxies: tuple[ProxyRecord, ...]
    operator: OperatorRecord | None
    consul_configured: bool
    synced_at: float
    docker_error: str | None = None
    consul_error: str | None = None
    problems: tuple[str, ...] = ()  # undecodable status, bad keys: shown, never fatal
    instances: tuple[InstanceRecord, ...] = ()  # every running operator, leader or standby

    def tasks_of(self, service_id: str) -> dict[str, TaskRecord]:
        return {key: task for key, task in self.tasks.items() if task.service_id == service_id}

    def tasks_on(self, node_id: str) -> list[TaskRecord]:
        return [
            task
            for task in self.tasks.values()
            if task.node_id == node_id and task.desired_state == "running"
        ]

    def service_by_name(self, name: str) -> ServiceRecord | None:
        return next((svc for svc in self.services.values() if svc.name == name), None)

    def node_by_name(self, hostname: str) -> NodeRecord | None:
        return next((node for node in self.nodes.values() if node.hostname == hostname), None)


def empty_snapshot(*, consul_configured: bool = False) -> ClusterSnapshot:
    return ClusterSnapshot(
        nodes={},
        services={},
        tasks={},
        operator_events=(),
        proxies=(),
        operator=None,
        consul_configured=consul_configured,
        synced_at=0.0,
    )


# --- building -------------------------------------------------------------


def _get(data: Any, *path: str) -> Any:
    for step in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(step)
    return data


def _text(data: Any, *path: str) -> str:
    value = _get(data, *path)
    return "" if value is None else str(value)


def _labels(data: Any, *path: str) -> dict[str, str]:
    value = _get(data, *path)
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def parse_docker_time(text: str) -> float | None:
    """Docker's RFC 3339 times carry nanoseconds, which `fromisoformat` refuses."""
    if not text:
        return None
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def desired_of(state: DesiredState, field_name: str) -> Desired:
    for error in state.errors:
        if error.field == field_name:
            return Desired(None, error.source.value, error.message)
    found = state.get(field_name)
    if found is None:
        return Desired(None, NONE_SOURCE)
    return Desired(str(found.value), found.source.value)


def _reconcile(
    kv: Mapping[str, str], prefix: str, kind: status_contract.StatusKind, name: str
) -> tuple[Reconcile | None, str | None]:
    raw = kv.get(status_contract.status_key(prefix, kind, name))
    if raw is None:
        return None, None
    try:
        decoded = status_contract.decode_object_status(raw)
    except status_contract.StatusDecodeError as error:
        return None, f"status of {kind} {name}: {error}"
    return (
        Reconcile(decoded.outcome.value, decoded.message, decoded.retries, decoded.last_run),
        None,
    )


def _task_address(task: Any) -> str:
    attachments = _get(task, "NetworksAttachments") or []
    addresses: list[str] = []
    for attachment in attachments:
        if _text(attachment, "Network", "Spec", "Name") == "ingress":
            continue
        for address in _get(attachment, "Addresses") or []:
            addresses.append(str(address).split("/")[0])
    return ",".join(addresses)


def build_tasks(
    tasks_raw: Iterable[Any], service_names: Mapping[str, str], node_names: Mapping[str, str]
) -> dict[str, TaskRecord]:
    tasks: dict[str, TaskRecord] = {}
    for task in tasks_raw:
        task_id = _text(task, "ID")
        if not task_id:
            continue
        service_id = _text(task, "ServiceID")
        node_id = _text(task, "NodeID")
        slot = _get(task, "Slot")
        tasks[task_id] = TaskRecord(
            id=task_id,
            service_id=service_id,
            service_name=service_names.get(service_id, service_id[:12]),
            slot=slot if isinstance(slot, int) else None,
            node_id=node_id,
            node_name=node_names.get(node_id, node_id[:12]),
            state=_text(task, "Status", "State"),
            desired_state=_text(task, "DesiredState"),
            address=_task_address(task),
            error=_text(task, "Status", "Err"),
            timestamp=parse_docker_time(_text(task, "Status", "Timestamp")),
        )
    return tasks


def build_nodes(
    nodes_raw: Iterable[Any],
    tasks: Mapping[str, TaskRecord],
    kv: Mapping[str, str],
    prefix: str,
    problems: list[str],
) -> dict[str, NodeRecord]:
    running: dict[str, int] = {}
    for task in tasks.values():
        if task.state == "running":
            running[task.node_id] = running.get(task.node_id, 0) + 1
    keys_by_node = desired_keys_by_object(prefix, "nodes", kv)
    nodes: dict[str, NodeRecord] = {}
    for node in nodes_raw:
        node_id = _text(node, "ID")
        if not node_id:
            continue
        hostname = _text(node, "Description", "Hostname")
        labels = _labels(node, "Spec", "Labels")
        state = merge_desired("node", labels, keys_by_node.get(hostname, {}))
        manager = _get(node, "ManagerStatus")
        if isinstance(manager, Mapping):
            manager_status = "leader" if manager.get("Leader") else _text(manager, "Reachability")
        else:
            manager_status = ""
        reconcile, problem = _reconcile(kv, prefix, "node", hostname)
        if problem:
            problems.append(problem)
        nodes[node_id] = NodeRecord(
            id=node_id,
            hostname=hostname,
            role=_text(node, "Spec", "Role"),
            manager_status=manager_status,
            availability=_text(node, "Spec", "Availability"),
            state=_text(node, "Status", "State"),
            address=_text(node, "Status", "Addr"),
            engine=_text(node, "Description", "Engine", "EngineVersion"),
            labels=tuple(sorted(labels.items())),
            running_tasks=running.get(node_id, 0),
            desired_availability=desired_of(state, "availability"),
            reconcile=reconcile,
        )
    return nodes


def build_services(
    services_raw: Iterable[Any],
    tasks: Mapping[str, TaskRecord],
    kv: Mapping[str, str],
    prefix: str,
    problems: list[str],
) -> dict[str, ServiceRecord]:
    running: dict[str, int] = {}
    for task in tasks.values():
        if task.state == "running" and task.desired_state == "running":
            running[task.service_id] = running.get(task.service_id, 0) + 1
    keys_by_service = desired_keys_by_object(prefix, "services", kv)
    services: dict[str, ServiceRecord] = {}
    for service in services_raw:
        service_id = _text(service, "ID")
        if not service_id:
            continue
        name = _text(service, "Spec", "Name")
        labels = _labels(service, "Spec", "Labels")
        state = merge_desired("service", labels, keys_by_service.get(name, {}))
        replicated = _get(service, "Spec", "Mode", "Replicated")
        if isinstance(replicated, Mapping):
            mode = "replicated"
            replicas = replicated.get("Replicas")
            spec_replicas: int | None = replicas if isinstance(replicas, int) else 1
        else:
            mode = "global" if _get(service, "Spec", "Mode", "Global") is not None else "other"
            spec_replicas = None
        image = _text(service, "Spec", "TaskTemplate", "ContainerSpec", "Image").split("@")[0]
        constraints = _get(service, "Spec", "TaskTemplate", "Placement", "Constraints") or []
        proxy_host = state.get("proxy.host")
        reconcile, problem = _reconcile(kv, prefix, "service", name)
        if problem:
            problems.append(problem)
        services[service_id] = ServiceRecord(
            id=service_id,
            name=name,
            mode=mode,
            spec_replicas=spec_replicas,
            running=running.get(service_id, 0),
            desired_replicas=desired_of(state, "replicas"),
            image=image,
            placement=tuple(str(c) for c in constraints),
            proxy_host="" if proxy_host is None else str(proxy_host.value),
            labels=tuple(sorted(labels.items())),
            reconcile=reconcile,
        )
    return services


def build_operator_events(
    kv: Mapping[str, str], prefix: str, problems: list[str]
) -> tuple[EventRecord, ...]:
    raw = kv.get(status_contract.events_key(prefix))
    if raw is None:
        return ()
    try:
        events = status_contract.decode_events(raw)
    except status_contract.StatusDecodeError as error:
        problems.append(f"operator event log: {error}")
        return ()
    records: list[EventRecord] = []
    for index, event in enumerate(events):
        records.append(
            EventRecord(
                # Time plus position keeps two events of the same instant apart
                # while staying stable across re-reads of the bounded log.
                key=f"op:{event.time:.6f}:{event.kind}:{event.object}:{index}",
                time=event.time,
                origin="operator",
                kind=event.kind,
                action=event.level.value,
                object=event.object,
                message=event.message,
            )
        )
    return tuple(records)


def build_operator(
    kv: Mapping[str, str], prefix: str, problems: list[str]
) -> OperatorRecord | None:
    raw = kv.get(status_contract.operator_key(prefix))
    if raw is None:
        return None
    try:
        info = status_contract.decode_operator_info(raw)
    except status_contract.StatusDecodeError as error:
        problems.append(f"operator info: {error}")
        return None
    return OperatorRecord(
        instance=info.instance,
        host=info.host,
        pid=info.pid,
        leader=info.leader,
        started=info.started,
        last_resync=info.last_resync,
    )


def build_instances(kv: Mapping[str, str], prefix: str) -> tuple[InstanceRecord, ...]:
    """`<prefix>/operators/<instance>`: one key per running instance (HA)."""
    head = status_contract.member_key(prefix, "")
    records: list[InstanceRecord] = []
    for key in sorted(kv):
        if not key.startswith(head) or "/" in key[len(head) :]:
            continue
        try:
            data = json.loads(kv[key])
        except ValueError:
            continue
        if isinstance(data, dict):
            records.append(
                InstanceRecord(
                    instance=str(data.get("instance") or key[len(head) :]),
                    host=str(data.get("host") or "?"),
                    leader=data.get("leader") is True,
                )
            )
    return tuple(records)


def build_proxies(kv: Mapping[str, str], prefix: str) -> tuple[ProxyRecord, ...]:
    """`<prefix>/proxy/<proxy-service>/config`, its `config-hash`, and every agent's
    JSON report under `.../status/<agent>` (unreadable ones say so, see
    swarmop.proxy.publish.parse_agent_status)."""
    head = f"{prefix}/proxy/"
    found: dict[str, dict[str, Any]] = {}
    for key, value in kv.items():
        if not key.startswith(head):
            continue
        service, _, rest = key[len(head) :].partition("/")
        if not service or not rest:
            continue
        entry = found.setdefault(service, {"config": None, "hash": None, "agents": {}})
        if rest == "config":
            entry["config"] = value
        elif rest == "config-hash":
            entry["hash"] = value.strip() or None
        elif rest.startswith("status/") and rest[len("status/") :]:
            agent = rest[len("status/") :]
            entry["agents"][agent] = parse_agent_status(agent, value)
    return tuple(
        ProxyRecord(
            service=name,
            config=entry["config"],
            config_hash=entry["hash"],
            agents=dict(sorted(entry["agents"].items())),
        )
        for name, entry in sorted(found.items())
    )


def build_snapshot(
    *,
    services: Sequence[Any],
    nodes: Sequence[Any],
    tasks: Sequence[Any],
    kv: Mapping[str, str] | None,
    prefix: str = "swarmop",
    synced_at: float | None = None,
    docker_error: str | None = None,
    consul_error: str | None = None,
) -> ClusterSnapshot:
    """`kv` is every key under `<prefix>/` (None when Consul is not configured)."""
    problems: list[str] = []
    keys: Mapping[str, str] = kv or {}
    service_names = {_text(s, "ID"): _text(s, "Spec", "Name") for s in services}
    node_names = {_text(n, "ID"): _text(n, "Description", "Hostname") for n in nodes}
    task_records = build_tasks(tasks, service_names, node_names)
    return ClusterSnapshot(
        nodes=build_nodes(nodes, task_records, keys, prefix, problems),
        services=build_services(services, task_records, keys, prefix, problems),
        tasks=task_records,
        operator_events=build_operator_events(keys, prefix, problems),
        proxies=build_proxies(keys, prefix),
        operator=build_operator(keys, prefix, problems),
        instances=build_instances(keys, prefix),
        consul_configured=kv is not None,
        synced_at=time.time() if synced_at is None else synced_at,
        docker_error=docker_error,
        consul_error=consul_error,
        problems=tuple(problems),
    )


def docker_event_record(event: Mapping[str, Any]) -> EventRecord | None:
    """A Docker event (service or node) as an event-log line; None for anything unusable."""
    kind = str(event.get("Type") or "")
    action = str(event.get("Action") or "")
    actor = event.get("Actor")
    if not kind or not action or not isinstance(actor, Mapping):
        return None
    actor_id = str(actor.get("ID") or "")
    attributes = actor.get("Attributes")
    attrs = attributes if isinstance(attributes, Mapping) else {}
    name = str(attrs.get("name") or actor_id[:12])
    nano = event.get("timeNano")
    seconds = event.get("time")
    if isinstance(nano, int):
        when = nano / 1e9
    elif isinstance(seconds, int | float):
        when = float(seconds)
    else:
        when = time.time()
    details = ", ".join(
        f"{k}={v}" for k, v in sorted(attrs.items()) if k != "name" and not k.startswith("com.")
    )
    return EventRecord(
        key=f"docker:{nano if isinstance(nano, int) else when}:{kind}:{actor_id}:{action}",
        time=when,
        origin="docker",
        kind=kind,
        action=action,
        object=name,
        message=details,
    )

"""The Textual application: views over the model, actions through the gate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from rich.text import Text
from swarmop.tui.commands import CommandError, parse_command
from swarmop.tui.gate import ActionGate, ActionRefused
from swarmop.tui.impact import OPERATOR_MISSING, availability_impact
from swarmop.tui.model import (
    OPERATOR_STALE_AFTER,
    ClusterSnapshot,
    EventRecord,
    NodeRecord,
    ServiceRecord,
    docker_event_record,
    empty_snapshot,
)
from swarmop.tui.rows import (
    EVENT_COLUMNS,
    NODE_COLUMNS,
    TASK_COLUMNS,
    Cell,
    Column,
    Row,
    clock,
    diff_rows,
    render_rows,
    scale_converged,
    service_columns,
)
from swarmop.tui.screens import ConfirmAvailabilityScreen, HelpScreen, ScaleScreen
from swarmop.tui.source import SnapshotSource, poll_forever
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import ContentSwitcher, DataTable, Footer, Input, Static

R = TypeVar("R")

EVENT_LOG_SIZE = 1000
TABLE_VIEWS = ("nodes", "services", "tasks", "events")


class SortableText(Text):
    """A cell's text that sorts by the cell's own key (numbers as numbers, times as times)."""

    sort_key: Any = None


def _text(cell: Cell) -> SortableText:
    text = SortableText(cell.text, style=cell.style, no_wrap=True, overflow="ellipsis")
    text.sort_key = cell.sort_key()
    return text


class RecordTable(DataTable[Text], Generic[R]):
    """A DataTable kept in step with a map of records by diffing rendered rows."""

    def __init__(
        self,
        columns: tuple[Column[R], ...],
        *,
        id: str,
        sort_index: int = 0,
        sort_reverse: bool = False,
    ) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.record_columns = columns
        self.shown: dict[str, Row] = {}
        self.sort_index = sort_index
        self.sort_reverse = sort_reverse

    def on_mount(self) -> None:
        for column in self.record_columns:
            self.add_column(column.label, key=column.key)

    def set_columns(self, columns: tuple[Column[R], ...]) -> None:
        # Same keys and labels, new render functions (e.g. progress of a scale).
        self.record_columns = columns

    def sync(self, records: Mapping[str, R], query: str, now: float) -> None:
        wanted = render_rows(records, self.record_columns, query, now)
        diff = diff_rows(self.shown, wanted)
        if diff.empty:
            return
        keys = [column.key for column in self.record_columns]
        for key in diff.removed:
            self.remove_row(key)
            del self.shown[key]
        for key, indexes in diff.changed.items():
            row = wanted[key]
            for index in indexes:
                self.update_cell(key, keys[index], _text(row[index]), update_width=True)
            self.shown[key] = row
        for key in diff.added:
            self.add_row(*(_text(cell) for cell in wanted[key]), key=key)
            self.shown[key] = wanted[key]
        if diff.added or diff.changed:
            self.apply_sort()

    def apply_sort(self) -> None:
        if not self.record_columns:
            return
        column = self.record_columns[self.sort_index % len(self.record_columns)].key
        self.sort(
            column, key=lambda value: getattr(value, "sort_key", ()), reverse=self.sort_reverse
        )

    def sort_by(self, index: int, reverse: bool | None = None) -> None:
        if index == self.sort_index and reverse is None:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_index = index
            self.sort_reverse = bool(reverse)
        self.apply_sort()

    def current_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return None if row_key.value is None else str(row_key.value)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(event.column_index)


class SwarmopApp(App[None]):
    TITLE = "swarmop"
    CSS = """
    #status { height: 1; background: $boost; padding: 0 1; }
    #title { height: 1; padding: 0 1; color: $accent; }
    #prompt { dock: bottom; display: none; }
    #prompt.visible { display: block; }
    ContentSwitcher { height: 1fr; }
    DataTable { height: 1fr; }
    #dialog { width: 90; height: auto; max-height: 90%; padding: 1 2;
              border: thick $primary; background: $surface; }
    ModalScreen { align: center middle; }
    .buttons { height: auto; margin-top: 1; }
    .buttons Button { margin-right: 2; }
    """
    BINDINGS: ClassVar[list[Any]] = [
        Binding("1", "view('nodes')", "nodes"),
        Binding("2", "view('services')", "services"),
        Binding("3", "view('events')", "events"),
        Binding("4", "view('proxy')", "proxy"),
        Binding("5", "view('operator')", "operator"),
        Binding("slash", "prompt('/')", "filter"),
        Binding("colon", "prompt(':')", "command"),
        Binding("question_mark", "help", "help"),
        Binding("s", "scale", "scale"),
        Binding("d", "availability('drain')", "drain"),
        Binding("p", "availability('pause')", "pause"),
        Binding("a", "availability('activate')", "activate"),
        Binding("o", "next_sort", "sort", show=False),
        Binding("r", "reverse_sort", "reverse", show=False),
        Binding("ctrl+r", "refresh_now", "refresh", show=False),
        Binding("escape", "go_back", "back", show=False),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self,
        source: SnapshotSource,
        gate: ActionGate,
        *,
        interval: float = 2.0,
        clock_fn: Callable[[], float] = time.time,
        start_polling: bool = True,
        prefix: str = "swarmop",
        operator_stale_after: float = OPERATOR_STALE_AFTER,
    ) -> None:
        super().__init__()
        self.operator_stale_after = operator_stale_after
        self.source = source
        self.gate = gate
        self.interval = interval
        self.clock = clock_fn
        self.start_polling = start_polling
        self.prefix = prefix
        self.snapshot = empty_snapshot(consul_configured=source.consul_configured)
        self.synced = False
        self.events: dict[str, EventRecord] = {}
        self.scaling: dict[str, int] = {}
        self.queries: dict[str, str] = {}
        self.view = "services"
        self.tasks_service: str | None = None
        self.prompt_mode = "/"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.snapshots_applied = 0

    # --- layout -----------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        yield Static("", id="title")
        with ContentSwitcher(initial="services"):
            yield RecordTable(NODE_COLUMNS, id="nodes")
            yield RecordTable(service_columns(self.scaling), id="services")
            yield RecordTable(TASK_COLUMNS, id="tasks", sort_index=1)
            yield RecordTable(EVENT_COLUMNS, id="events", sort_reverse=True)
            with VerticalScroll(id="proxy"):
                yield Static("", id="proxy-text")
            with Vertical(id="operator"):
                yield Static("", id="operator-text")
        yield Input(id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        self.render_status()
        self.render_title()
        self.set_interval(1.0, self.render_status)
        if self.start_polling:
            self.run_worker(self._poll, thread=True, exclusive=False, group="poll")
            self.run_worker(self._watch_events, thread=True, exclusive=False, group="events")
        self.query_one("#services", RecordTable).focus()

    def on_unmount(self) -> None:
        self._stop.set()
        self._wake.set()
        self.source.close()

    # --- background -------------------------------------------------------

    def _poll(self) -> None:
        poll_forever(
            self.source,
            lambda snapshot: self.call_from_thread(self.apply_snapshot, snapshot),
            wake=self._wake,
            stop=self._stop,
            interval=self.interval,
        )

    def _watch_events(self) -> None:
        def sink(event: Mapping[str, Any]) -> None:
            self._wake.set()
            if not self._stop.is_set():
                self.call_from_thread(self.add_docker_event, event)

        self.source.watch_events(sink, self._stop)

    async def actions_done(self) -> None:
        """Wait for scale/availability writes in flight (the polling threads never end)."""
        for worker in [w for w in self.workers if w.group == "actions"]:
            await worker.wait()

    def action_refresh_now(self) -> None:
        self._wake.set()

    # --- model in -----------------------------------------------------------

    def apply_snapshot(self, snapshot: ClusterSnapshot) -> None:
        self.snapshot = snapshot
        self.synced = True
        self.snapshots_applied += 1
        for event in snapshot.operator_events:
            self.events[event.key] = event
        self._trim_events()
        for service_id, target in list(self.scaling.items()):
            service = snapshot.services.get(service_id)
            if service is None:
                del self.scaling[service_id]
            elif scale_converged(service, target):
                del self.scaling[service_id]
                self.notify(f"{service.name} converged at {target} replicas")
        self.refresh_view()
        self.render_status()

    def add_docker_event(self, event: Mapping[str, Any]) -> None:
        record = docker_event_record(event)
        if record is None:
            return
        self.events[record.key] = record
        self._trim_events()
        if self.view == "events":
            self.refresh_view()

    def _trim_events(self) -> None:
        if len(self.events) > EVENT_LOG_SIZE:
            newest = sorted(self.events.values(), key=lambda e: e.time)[-EVENT_LOG_SIZE:]
            self.events = {event.key: event for event in newest}

    # --- rendering ----------------------------------------------------------

    def table(self, view: str) -> RecordTable[Any]:
        return self.query_one(f"#{view}", RecordTable)

    def refresh_view(self) -> None:
        now = self.clock()
        query = self.queries.get(self.view, "")
        snap = self.snapshot
        if self.view == "nodes":
            self.table("nodes").sync(snap.nodes, query, now)
        elif self.view == "services":
            table = self.table("services")
            table.set_columns(service_columns(self.scaling))
            table.sync(snap.services, query, now)
        elif self.view == "tasks":
            tasks = snap.tasks_of(self.tasks_service) if self.tasks_service else {}
            self.table("tasks").sync(tasks, query, now)
        elif self.view == "events":
            self.table("events").sync(self.events, query, now)
        elif self.view == "proxy":
            self.query_one("#proxy-text", Static).update(self.proxy_text())
        elif self.view == "operator":
            self.query_one("#operator-text", Static).update(self.operator_text())
        self.render_title()

    def render_title(self) -> None:
        title = {
            "nodes": "Nodes",
            "services": "Services",
            "events": "Event log (Docker and operator, newest first)",
            "proxy": "Proxy",
            "operator": "Operator",
        }.get(self.view, "")
        if self.view == "tasks":
            service = self.snapshot.services.get(self.tasks_service or "")
            title = f"Tasks of {service.name if service else '(gone)'}  (esc: back)"
        if self.view in TABLE_VIEWS:
            shown = self.table(self.view).row_count
            title += f"  [{shown}]"
        query = self.queries.get(self.view, "")
        if query:
            title += f"  filter: {query}"
        self.query_one("#title", Static).update(Text(title))

    def status_text(self) -> Text:
        snap = self.snapshot
        now = self.clock()
        text = Text()
        if self.gate.read_only:
            text.append(" READ-ONLY ", style="bold white on red")
            text.append(" ")
        if snap.docker_error:
            text.append(f"docker: {snap.docker_error} (retrying)", style="bold red")
        else:
            text.append("docker: ok", style="green")
        text.append("  ")
        if not snap.consul_configured:
            text.append("consul: not configured (labels only)", style="yellow")
        elif snap.consul_error:
            text.append(f"consul: {snap.consul_error} (retrying)", style="bold red")
        else:
            text.append("consul: ok", style="green")
        text.append("  ")
        text.append(*self.operator_summary(now))
        text.append("  ")
        if self.synced:
            ago = max(0, int(now - snap.synced_at))
            text.append(f"synced {clock(snap.synced_at)} ({ago}s ago)")
        else:
            text.append("connecting...", style="yellow")
        if snap.problems:
            text.append(f"  {len(snap.problems)} problem(s): see :operator", style="yellow")
        return text

    def operator_summary(self, now: float) -> tuple[str, str]:
        snap = self.snapshot
        if not snap.consul_configured:
            return ("operator: unknown (needs Consul)", "yellow")
        operator = snap.operator
        if operator is None:
            return ("operator: not running", "bold yellow")
        if not operator.seen_recently(now, self.operator_stale_after):
            return (f"operator: {operator.instance} not seen recently", "bold yellow")
        return (f"operator: {operator.instance}", "green")

    def render_status(self) -> None:
        # The 1 s timer can fire once more while the app shuts down and its
        # widgets are already gone: nothing to draw then, and no reason to crash.
        status = self.query_one_optional("#status", Static)
        if status is not None:
            status.update(self.status_text())

    def proxy_text(self) -> Text:
        snap = self.snapshot
        if not snap.consul_configured:
            return Text("Consul is not configured: the proxy config is published there.", "yellow")
        if not snap.proxies:
            return Text(f"No proxy config under {self.prefix}/proxy/ yet.", "yellow")
        text = Text()
        for proxy in snap.proxies:
            text.append(f"{proxy.service}\n", style="bold")
            published = proxy.config_hash[:12] if proxy.config_hash else "none"
            text.append(f"  published config: {published}\n")
            if not proxy.agents:
                text.append("  no agent has reported yet\n", style="yellow")
            for line in proxy.agent_lines():
                style = "red" if "refused" in line or ": error," in line else ""
                text.append(f"  {line}\n", style=style)
            text.append("  rendered config:\n", style="dim")
            text.append(proxy.config or "  (none)", style="")
            text.append("\n\n")
        return text

    def operator_text(self) -> Text:
        snap = self.snapshot
        now = self.clock()
        text = Text()
        summary, style = self.operator_summary(now)
        text.append(summary + "\n", style=style)
        operator = snap.operator
        if operator is not None:
            text.append(
                f"  instance: {operator.instance} on {operator.host} (pid {operator.pid})\n"
            )
            text.append(f"  leader: {'yes' if operator.leader else 'no'}\n")
            text.append(f"  started: {clock(operator.started)}\n")
            resync = "never" if operator.last_resync is None else clock(operator.last_resync)
            text.append(f"  last resync: {resync}\n")
        elif snap.consul_configured:
            text.append(f"  nothing at {self.prefix}/operator: {OPERATOR_MISSING}\n")
        else:
            text.append("  without Consul the operator's status cannot be read\n")
        if snap.instances:
            text.append("\nInstances (high availability):\n", style="bold")
            for member in snap.instances:
                role = "leader" if member.leader else "standby"
                text.append(f"  {member.instance} on {member.host}: {role}\n")
        if snap.problems:
            text.append("\nProblems reading published status:\n", style="bold yellow")
            for problem in snap.problems:
                text.append(f"  {problem}\n")
        return text

    # --- navigation ---------------------------------------------------------

    def action_view(self, view: str) -> None:
        self.view = view
        self.query_one(ContentSwitcher).current = view
        if view in TABLE_VIEWS:
            self.table(view).focus()
        self.refresh_view()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_go_back(self) -> None:
        prompt = self.query_one("#prompt", Input)
        if prompt.has_class("visible"):
            self._close_prompt()
        elif self.view == "tasks":
            self.action_view("services")
        elif self.queries.get(self.view):
            self.queries[self.view] = ""
            self.refresh_view()

    def show_tasks(self, service: ServiceRecord) -> None:
        self.tasks_service = service.id
        table = self.table("tasks")
        for key in list(table.shown):
            table.remove_row(key)
        table.shown.clear()
        self.action_view("tasks")

    @on(DataTable.RowSelected, "#services")
    def _service_selected(self, event: DataTable.RowSelected) -> None:
        service = self.snapshot.services.get(str(event.row_key.value))
        if service is not None:
            self.show_tasks(service)

    def action_next_sort(self) -> None:
        if self.view in TABLE_VIEWS:
            table = self.table(self.view)
            table.sort_by((table.sort_index + 1) % len(table.record_columns), reverse=False)

    def action_reverse_sort(self) -> None:
        if self.view in TABLE_VIEWS:
            table = self.table(self.view)
            table.sort_by(table.sort_index)

    # --- prompt: filter and commands ----------------------------------------

    def action_prompt(self, mode: str) -> None:
        prompt = self.query_one("#prompt", Input)
        self.prompt_mode = mode
        prompt.placeholder = (
            "filter: words must all match; col:text looks in one column"
            if mode == "/"
            else "command: nodes services events proxy operator tasks scale drain ... (help)"
        )
        prompt.value = self.queries.get(self.view, "") if mode == "/" else ""
        prompt.add_class("visible")
        prompt.focus()

    def _close_prompt(self) -> None:
        prompt = self.query_one("#prompt", Input)
        prompt.remove_class("visible")
        if self.view in TABLE_VIEWS:
            self.table(self.view).focus()

    @on(Input.Changed, "#prompt")
    def _prompt_changed(self, event: Input.Changed) -> None:
        if self.prompt_mode == "/":
            self.set_filter(event.value)

    @on(Input.Submitted, "#prompt")
    def _prompt_submitted(self, event: Input.Submitted) -> None:
        self._close_prompt()
        if self.prompt_mode == "/":
            self.set_filter(event.value)
        else:
            self.run_command(event.value)

    def set_filter(self, query: str) -> None:
        self.queries[self.view] = query.strip()
        self.refresh_view()

    def run_command(self, line: str) -> None:
        try:
            command = parse_command(line)
        except CommandError as error:
            self.notify(str(error), severity="error")
            return
        if command.name == "view":
            self.action_view(command.args[0])
        elif command.name == "tasks":
            service = self.snapshot.service_by_name(command.args[0])
            if service is None:
                self.notify(f"no service {command.args[0]!r}", severity="error")
            else:
                self.show_tasks(service)
        elif command.name == "scale":
            service = self.snapshot.service_by_name(command.args[0])
            if service is None:
                self.notify(f"no service {command.args[0]!r}", severity="error")
            else:
                self.submit_scale(service, command.args[1])
        elif command.name == "availability":
            node = self.snapshot.node_by_name(command.args[0])
            if node is None:
                self.notify(f"no node {command.args[0]!r}", severity="error")
            else:
                self.ask_availability(node, _availability_word(command.args[1]))
        elif command.name == "filter":
            self.set_filter(command.args[0])
        elif command.name == "help":
            self.action_help()
        elif command.name == "quit":
            self.exit()

    # --- actions (all through the gate) -------------------------------------

    def selected(self, view: str) -> str | None:
        if self.view != view:
            return None
        return self.table(view).current_key()

    def action_scale(self) -> None:
        key = self.selected("services")
        service = self.snapshot.services.get(key or "")
        if service is None:
            self.notify("select a service first (2: services)", severity="warning")
            return
        try:
            self.gate.check("scale")
        except ActionRefused as error:
            self.notify(str(error), severity="error")
            return

        def chosen(replicas: int | None) -> None:
            if replicas is not None:
                self.submit_scale(service, replicas)

        self.push_screen(ScaleScreen(service, self.gate.replicas_target(service)), chosen)

    def submit_scale(self, service: ServiceRecord, replicas: int | str) -> None:
        self._scale_worker(service, replicas)

    @work(thread=True, group="actions")
    def _scale_worker(self, service: ServiceRecord, replicas: int | str) -> None:
        try:
            receipt = self.gate.scale(service, replicas)
        except ActionRefused as error:
            self.call_from_thread(self.notify, str(error), severity="error")
            return
        except Exception as error:
            self.call_from_thread(self.notify, f"scale failed: {error}", severity="error")
            return
        self.call_from_thread(self._scale_recorded, service, int(receipt.value), receipt.target)

    def _scale_recorded(self, service: ServiceRecord, replicas: int, target: str) -> None:
        self.scaling[service.id] = replicas
        message = f"{service.name}: desired replicas {replicas} written to {target}"
        if self.operator_summary(self.clock())[1] != "green":
            message += f"\n{OPERATOR_MISSING}"
        self.notify(message)
        self._wake.set()
        self.refresh_view()

    def action_availability(self, availability: str) -> None:
        key = self.selected("nodes")
        node = self.snapshot.nodes.get(key or "")
        if node is None:
            self.notify("select a node first (1: nodes)", severity="warning")
            return
        self.ask_availability(node, _availability_word(availability))

    def ask_availability(self, node: NodeRecord, availability: str) -> None:
        try:
            self.gate.check(availability)
        except ActionRefused as error:
            self.notify(str(error), severity="error")
            return
        impact = availability_impact(
            self.snapshot, node, availability, self.clock(), stale_after=self.operator_stale_after
        )

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._availability_worker(node, availability)

        self.push_screen(
            ConfirmAvailabilityScreen(impact, self.gate.availability_target(node)), confirmed
        )

    @work(thread=True, group="actions")
    def _availability_worker(self, node: NodeRecord, availability: str) -> None:
        try:
            receipt = self.gate.set_availability(node, availability)
        except ActionRefused as error:
            self.call_from_thread(self.notify, str(error), severity="error")
            return
        except Exception as error:
            self.call_from_thread(self.notify, f"{availability} failed: {error}", severity="error")
            return
        message = (
            f"{node.hostname}: desired availability {availability} written to {receipt.target}"
        )
        if self.operator_summary(self.clock())[1] != "green":
            message += f"\n{OPERATOR_MISSING}"
        self.call_from_thread(self.notify, message)
        self._wake.set()


def _availability_word(word: str) -> str:
    return "active" if word == "activate" else word

"""`Sandbox`: bring a named local swarm with Consul up, inspect it, break it, remove it."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from swarmop.sandbox import cleanup, consul_agent, dockerd, example, images, netns, procs, swarm
from swarmop.sandbox import state as state_file
from swarmop.sandbox.errors import SandboxError
from swarmop.sandbox.info import NodeInfo, SandboxInfo
from swarmop.sandbox.layout import (
    CONSUL_FORWARD_PORT,
    DEFAULT_NAME,
    MAX_NODES,
    NETNS_DIR,
    RUN_BASE,
    NodeLayout,
    SandboxLayout,
    preferred_subnet_index,
    validate_name,
)
from swarmop.sandbox.leftovers import Leftovers, find_leftovers
from swarmop.sandbox.state import SandboxState
from swarmop.sandbox.tools import Tools, find_tools, require_root

logger = logging.getLogger("swarmop.sandbox")

KEEP_FAILED_ENV = "SWARMOP_SANDBOX_KEEP_FAILED"
DEFAULT_NODES = 3


def _subnets_in_use(except_name: str) -> set[int]:
    used = set()
    with contextlib.suppress(FileNotFoundError):
        for directory in RUN_BASE.iterdir():
            if directory.name == except_name or not directory.is_dir():
                continue
            other = state_file.load(directory / "state.json")
            if other is not None:
                used.add(other.subnet_index)
    return used


class Sandbox:
    """One named sandbox. Methods that change it need root."""

    def __init__(self, name: str = DEFAULT_NAME) -> None:
        self.name = validate_name(name)

    # -- paths and state ---------------------------------------------------------------

    def _layout(self, state: SandboxState | None) -> SandboxLayout:
        index = state.subnet_index if state is not None else None
        return SandboxLayout.for_name(self.name, index)

    def _state(self) -> SandboxState | None:
        return state_file.load(SandboxLayout.for_name(self.name).state_file)

    def _save(self, state: SandboxState) -> None:
        state_file.save(self._layout(state).state_file, state)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One `up`/`down`/restart at a time per sandbox name, across processes."""
        RUN_BASE.mkdir(parents=True, exist_ok=True)
        lock_path = SandboxLayout.for_name(self.name).lock_file
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def busy(self) -> bool:
        """Whether an `up`, `down` or fault injection holds the sandbox's lock right now."""
        try:
            with open(SandboxLayout.for_name(self.name).lock_file) as lock:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)  # closing the file releases it
        except BlockingIOError:
            return True
        except OSError:  # no lock file: nothing holds it
            return False
        return False

    # -- inspection --------------------------------------------------------------------

    def info(self) -> SandboxInfo | None:
        """What the last successful `up` made, or None when the sandbox is not up."""
        state = self._state()
        if state is None or state.phase != "ready" or state.consul_ports is None:
            return None
        layout = self._layout(state)
        nodes = tuple(
            NodeInfo(
                hostname=node.hostname,
                docker_host=node.docker_host,
                address=node.address,
                netns=node.netns,
                manager=node.index == 1,
            )
            for node in layout.nodes(state.node_count)
        )
        return SandboxInfo(
            name=self.name,
            manager_docker_host=nodes[0].docker_host,
            nodes=nodes,
            consul_http_addr=f"{consul_agent.LOOPBACK}:{state.consul_ports.http}",
            consul_addr_in_swarm=layout.consul_in_swarm,
            subnet=str(layout.subnet),
        )

    def problems(self) -> list[str]:
        """What is wrong with a sandbox recorded as up; empty when everything answers."""
        state = self._state()
        if state is None:
            return ["not up (no state file)"]
        if state.phase != "ready" or state.consul_ports is None:
            return [f"incomplete (state phase {state.phase!r}): run `up` again to rebuild it"]
        layout = self._layout(state)
        found = []
        for node in layout.nodes(state.node_count):
            pid = state.dockerd_pids.get(node.hostname, 0)
            if not cleanup.owned(layout, pid):
                found.append(f"dockerd of {node.hostname} is not running")
            elif not dockerd.answers(node.docker_host):
                found.append(f"dockerd of {node.hostname} does not answer")
        if not cleanup.owned(layout, state.consul_pid):
            found.append("Consul is not running")
        elif not consul_agent.has_leader(state.consul_ports.http):
            found.append("Consul has no leader")
        if not cleanup.owned(layout, state.forwarder_pid):
            found.append("the Consul forwarder into the swarm is not running")
        return found

    def leftovers(self) -> Leftovers:
        """Processes, namespaces, mounts, cgroups and directories the sandbox has now.
        On a sandbox that is not up these are the traces of a killed `up` or `down`."""
        return find_leftovers(SandboxLayout.for_name(self.name))

    # -- up / down ---------------------------------------------------------------------

    def up(
        self, nodes: int | None = None, example: bool = False, recreate: bool = False
    ) -> SandboxInfo:
        """Create the sandbox, or return at once when it is up and healthy.

        `nodes` None keeps the recorded node count (3 for a new sandbox). A healthy
        sandbox with another node count is kept and this raises, unless `recreate`
        asks to build it again (a new swarm: its services and Consul data are lost).
        Leftovers of a crashed or broken sandbox are always removed first.
        """
        if nodes is not None and not 1 <= nodes <= MAX_NODES:
            raise SandboxError(f"--nodes must be between 1 and {MAX_NODES}, got {nodes}")
        require_root()
        tools = find_tools()
        with self._locked():
            current = self._state()
            if current is not None and not recreate and not self.problems():
                if nodes is not None and nodes != current.node_count:
                    raise SandboxError(self._node_count_refusal(current.node_count, nodes))
                if example and not current.example:
                    self._deploy_example(current)
                    current.example = True
                    self._save(current)
                info = self.info()
                assert info is not None
                return info
            if nodes is not None:
                count = nodes
            else:
                count = current.node_count if current is not None else DEFAULT_NODES
            # Anything else on record (a crashed run, a rebuild asked for) goes first.
            cleanup.teardown(tools.ip, self._layout(current), current)
            try:
                return self._create(tools, count, example)
            except BaseException:
                if os.environ.get(KEEP_FAILED_ENV) != "1":
                    with contextlib.suppress(Exception):
                        cleanup.teardown(tools.ip, self._layout(self._state()), self._state())
                raise

    def _node_count_refusal(self, running: int, wanted: int) -> str:
        return (
            f"sandbox {self.name!r} is up with {running} nodes, not {wanted}; it is left as "
            f"it is. To rebuild it with {wanted} nodes (a new swarm: its services and Consul "
            f"data are lost) run `swarmop sandbox up --name {self.name} --nodes {wanted} "
            f"--recreate`, or `swarmop sandbox down --name {self.name}` first"
        )

    def down(self) -> None:
        require_root()
        tools = find_tools()
        with self._locked():
            current = self._state()
            cleanup.teardown(tools.ip, self._layout(current), current)
            # The lock file is the last trace of the sandbox. A concurrent caller
            # blocked on it then holds a lock on a removed file: harmless, since
            # it finds nothing to act on or starts from scratch.
            SandboxLayout.for_name(self.name).lock_file.unlink(missing_ok=True)

    def _choose_subnet_index(self) -> int:
        index = preferred_subnet_index(self.name)
        used = _subnets_in_use(self.name)
        while index in used:
            index += 1
        return index

    def _create(self, tools: Tools, node_count: int, example_wanted: bool) -> SandboxInfo:
        state = SandboxState(
            name=self.name, subnet_index=self._choose_subnet_index(), node_count=node_count
        )
        layout = self._layout(state)
        layout.run_dir.mkdir(parents=True, exist_ok=True)
        self._save(state)
        node_layouts = layout.nodes(node_count)

        with ThreadPoolExecutor(max_workers=4) as pool:
            # Image tarballs build while the daemons start.
            built = pool.submit(images.build_all, tools)

            netns.create_hub(tools.ip, layout)
            for node in node_layouts:
                netns.create_node(tools.ip, layout, node)
            for node in node_layouts:
                state.dockerd_pids[node.hostname] = dockerd.start(tools, node)
            self._save(state)

            state.consul_ports = consul_agent.choose_ports()
            state.consul_pid = consul_agent.start(tools, layout, state.consul_ports)
            state.forwarder_pid = self._start_forwarder(layout, state.consul_ports.http)
            self._save(state)

            for node in node_layouts:
                dockerd.wait_ready(node, state.dockerd_pids[node.hostname])
            manager, workers = node_layouts[0], node_layouts[1:]
            token = swarm.init(manager)
            swarm.join_all(manager, workers, token)
            images.import_everywhere([node.docker_host for node in node_layouts], built.result())
            swarm.wait_nodes_ready(manager, [node.hostname for node in node_layouts])
            consul_agent.wait_ready(layout, state.consul_ports, state.consul_pid)
            self._wait_forwarder(layout, state.forwarder_pid)

        if example_wanted:
            self._deploy_example(state)
            state.example = True
        state.phase = "ready"
        self._save(state)
        info = self.info()
        assert info is not None
        return info

    def _start_forwarder(self, layout: SandboxLayout, consul_http_port: int) -> int:
        argv = [
            sys.executable,
            "-m",
            cleanup.FORWARDER_MODULE,
            "--sandbox",
            self.name,
            "--netns",
            str(NETNS_DIR / layout.hub_netns),
            "--listen",
            f"{layout.hub_address}:{CONSUL_FORWARD_PORT}",
            "--target",
            f"{consul_agent.LOOPBACK}:{consul_http_port}",
        ]
        return procs.spawn(argv, layout.forwarder_log)

    def _wait_forwarder(self, layout: SandboxLayout, pid: int) -> None:
        def listening() -> bool:
            with contextlib.suppress(OSError):
                return "forwarder:" in layout.forwarder_log.read_text()
            return False

        if not procs.wait_for(lambda: listening() or not procs.is_alive(pid), 20.0):
            raise SandboxError("the Consul forwarder did not start within 20s")
        if not procs.is_alive(pid):
            raise SandboxError(
                f"the Consul forwarder exited:\n{dockerd.tail(layout.forwarder_log)}"
            )

    def _deploy_example(self, state: SandboxState) -> None:
        layout = self._layout(state)
        api = dockerd.api_client(layout.node(1).docker_host)
        try:
            example.deploy(
                api,
                [node.hostname for node in layout.nodes(state.node_count)],
                consul_addr_in_swarm=layout.consul_in_swarm,
            )
        finally:
            api.close()

    # -- fault injection ---------------------------------------------------------------

    def _running_state(self) -> SandboxState:
        state = self._state()
        if state is None or state.phase != "ready":
            raise SandboxError(f"sandbox {self.name!r} is not up")
        return state

    def _node(self, state: SandboxState, hostname: str) -> NodeLayout:
        for node in self._layout(state).nodes(state.node_count):
            if node.hostname == hostname:
                return node
        raise SandboxError(f"sandbox {self.name!r} has no node {hostname!r}")

    def stop_node(self, hostname: str, timeout: float = 30.0) -> None:
        """Stop one node's dockerd (SIGTERM, then SIGKILL after `timeout`); its data stays."""
        with self._locked():
            state = self._running_state()
            self._node(state, hostname)
            pid = state.dockerd_pids.get(hostname, 0)
            if cleanup.owned(self._layout(state), pid):
                procs.stop(pid, timeout=timeout)

    def start_node(self, hostname: str) -> None:
        """Start a stopped node's dockerd on its kept data; it rejoins the swarm by itself."""
        tools = find_tools()
        with self._locked():
            state = self._running_state()
            node = self._node(state, hostname)
            if cleanup.owned(self._layout(state), state.dockerd_pids.get(hostname, 0)):
                return
            state.dockerd_pids[hostname] = dockerd.start(tools, node)
            self._save(state)
            dockerd.wait_ready(node, state.dockerd_pids[hostname])

    def restart_node(self, hostname: str) -> None:
        self.stop_node(hostname)
        self.start_node(hostname)

    def stop_consul(self) -> None:
        """Stop the Consul agent. It runs in dev mode: a restart starts with an empty store."""
        with self._locked():
            state = self._running_state()
            if cleanup.owned(self._layout(state), state.consul_pid):
                procs.stop(state.consul_pid or 0)

    def start_consul(self) -> None:
        tools = find_tools()
        with self._locked():
            state = self._running_state()
            if cleanup.owned(self._layout(state), state.consul_pid):
                return
            assert state.consul_ports is not None
            layout = self._layout(state)
            state.consul_pid = consul_agent.start(tools, layout, state.consul_ports)
            self._save(state)
            consul_agent.wait_ready(layout, state.consul_ports, state.consul_pid)

    def restart_consul(self) -> None:
        self.stop_consul()
        self.start_consul()

    def dockerd_pid(self, hostname: str) -> int | None:
        state = self._running_state()
        self._node(state, hostname)
        pid = state.dockerd_pids.get(hostname)
        return pid if pid and cleanup.owned(self._layout(state), pid) else None

    def consul_pid(self) -> int | None:
        state = self._running_state()
        pid = state.consul_pid
        return pid if pid and cleanup.owned(self._layout(state), pid) else None

    def run_in_node(
        self, hostname: str, argv: Sequence[str], timeout: float = 60.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in a node's network namespace (iptables, tc, ip, ...)."""
        state = self._running_state()
        node = self._node(state, hostname)
        return subprocess.run(
            [find_tools().nsenter, f"--net={node.netns_path}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def wait_swarm_ready(self, timeout: float = 60.0) -> None:
        """Wait until every node is Ready again (after a node restart, say)."""
        state = self._running_state()
        layout = self._layout(state)
        nodes = layout.nodes(state.node_count)
        swarm.wait_nodes_ready(nodes[0], [node.hostname for node in nodes], timeout=timeout)


def all_sandbox_names() -> list[str]:
    return cleanup.known_sandbox_names()


def running_sandbox_from_args(argv: Sequence[str] | None, description: str) -> SandboxInfo | None:
    """`--name NAME` from the command line, and that sandbox's info if it is up
    (else None, after saying so on stderr). For the image-building modules' mains."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--name", default=DEFAULT_NAME, help="sandbox name (default %(default)s)")
    name = parser.parse_args(argv).name
    info = Sandbox(name).info()
    if info is None:
        print(f"sandbox {name} is not up: run `swarmop sandbox up --name {name}`", file=sys.stderr)
    return info

"""Names, paths and addresses a sandbox derives from its name."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from swarmop.sandbox import SandboxError
from swarmop.sandbox.layout import SandboxLayout, subnet_for_index, validate_name
from swarmop.sandbox.state import ConsulPorts, SandboxState, load, save


@pytest.mark.parametrize("name", ["", "UPPER", "-x", "x-", "a--b", "a/b", "x" * 25, "a b"])
def test_bad_names_are_refused_with_a_clear_error(name: str) -> None:
    with pytest.raises(SandboxError, match="invalid sandbox name"):
        validate_name(name)


def test_every_address_lives_in_the_shared_pool_outside_swarm_and_docker_pools() -> None:
    pool = ipaddress.IPv4Network("100.64.0.0/10")
    for name in ("swarmop", "swarmop-test", "a", "x" * 24):
        layout = SandboxLayout.for_name(name)
        assert layout.subnet.subnet_of(pool)
        assert not layout.subnet.overlaps(ipaddress.IPv4Network("10.0.0.0/8"))
        assert ipaddress.IPv4Address(layout.hub_address) in layout.subnet
        for node in layout.nodes(3):
            assert ipaddress.IPv4Address(node.address) in layout.subnet


def test_different_names_get_different_subnets_and_paths() -> None:
    first, second = SandboxLayout.for_name("swarmop"), SandboxLayout.for_name("swarmop-test")
    assert first.subnet != second.subnet
    assert first.run_dir != second.run_dir and first.data_dir != second.data_dir
    assert first.hub_netns != second.hub_netns


def test_subnet_index_wraps_inside_the_pool() -> None:
    assert subnet_for_index(0) == subnet_for_index(1 << 14)


def test_socket_paths_fit_the_unix_limit_for_the_longest_name() -> None:
    layout = SandboxLayout.for_name("x" * 24)
    node = layout.node(20)
    # containerd's socket is the deepest one a node creates.
    assert len(str(node.exec_root / "containerd" / "containerd.sock")) < 100


def test_name_patterns_do_not_catch_another_sandbox() -> None:
    a = SandboxLayout.for_name("a")
    other = SandboxLayout.for_name("a-node-1")
    assert a.netns_pattern.match("swarmop-a-node-1")
    assert not a.netns_pattern.match(other.hub_netns)
    assert not a.netns_pattern.match(other.node(1).netns)
    assert not a.cgroup_pattern.match(other.node(1).cgroup_parent)


def test_state_round_trips_and_a_torn_file_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = SandboxState(
        name="x",
        subnet_index=7,
        node_count=3,
        phase="ready",
        consul_ports=ConsulPorts(1, 2, 3, 4, 5, 6),
        dockerd_pids={"node-1": 42},
    )
    save(path, state)
    assert load(path) == state
    path.write_text("{ torn")
    assert load(path) is None
    assert load(tmp_path / "missing.json") is None

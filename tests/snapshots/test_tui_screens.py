"""Snapshot tests of the main screens, fed from the fixed sample cluster.

Regenerate after an intended change with `pytest tests/snapshots --snapshot-update`
and review the SVGs (pytest writes a diff report when one no longer matches).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from swarmop.tui.app import SwarmopApp
from swarmop.tui.gate import ActionGate
from swarmop.tui.sample import NOW, sample_docker_events, sample_snapshot
from swarmop.tui.source import StaticSource

SIZE = (170, 24)


def make_app(*, read_only: bool = True) -> SwarmopApp:
    source = StaticSource(sample_snapshot(), sample_docker_events())
    return SwarmopApp(
        source, ActionGate(None, read_only=read_only), clock_fn=lambda: NOW, start_polling=False
    )


async def load(pilot: Any) -> None:
    app = pilot.app
    app.apply_snapshot(sample_snapshot())
    for event in sample_docker_events():
        app.add_docker_event(event)
    await pilot.pause()


SnapCompare = Callable[..., bool]


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("services", ["2"]),
        ("nodes", ["1"]),
        ("events", ["3"]),
        ("operator", ["5"]),
    ],
)
def test_screen(snap_compare: SnapCompare, name: str, keys: list[str]) -> None:
    assert snap_compare(make_app(), press=keys, terminal_size=SIZE, run_before=load), name


def test_tasks_screen(snap_compare: SnapCompare) -> None:
    async def open_tasks(pilot: Any) -> None:
        await load(pilot)
        app = pilot.app
        table = app.table("services")
        api = sample_snapshot().service_by_name("api")
        assert api is not None
        table.move_cursor(row=table.get_row_index(api.id))
        await pilot.press("enter")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=open_tasks)

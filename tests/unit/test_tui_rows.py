"""Row rendering, filtering, sorting and diffing: pure, no Textual."""

from __future__ import annotations

from dataclasses import replace

from swarmop.tui.rows import (
    DRIFT,
    NODE_COLUMNS,
    PENDING,
    Cell,
    diff_rows,
    natural_key,
    render_rows,
    row_matches,
    service_columns,
)
from swarmop.tui.sample import NOW, sample_snapshot


def _row(*texts: str) -> tuple[Cell, ...]:
    return tuple(Cell(t) for t in texts)


def test_diff_reports_added_changed_cells_and_removed() -> None:
    shown = {"a": _row("web", "1/1"), "b": _row("db", "1/1")}
    wanted = {"a": _row("web", "2/2"), "c": _row("api", "0/0")}
    diff = diff_rows(shown, wanted)
    assert diff.added == ("c",)
    assert diff.removed == ("b",)
    assert diff.changed == {"a": (1,)}


def test_diff_of_equal_rows_is_empty() -> None:
    rows = {"a": _row("web", "1/1")}
    assert diff_rows(rows, dict(rows)).empty


def test_a_style_change_alone_is_a_change() -> None:
    shown = {"a": (Cell("web"), Cell("1/1"))}
    wanted = {"a": (Cell("web"), Cell("1/1", DRIFT))}
    assert diff_rows(shown, wanted).changed == {"a": (1,)}


def test_one_service_change_touches_one_row() -> None:
    snap = sample_snapshot()
    columns = service_columns({})
    before = render_rows(snap.services, columns, now=NOW)
    api = snap.service_by_name("api")
    assert api is not None
    services = dict(snap.services)
    services[api.id] = replace(api, spec_replicas=3)
    after = render_rows(services, columns, now=NOW)
    diff = diff_rows(before, after)
    assert diff.added == () and diff.removed == ()
    assert list(diff.changed) == [api.id]


def test_filter_words_and_column_prefix() -> None:
    labels = ["time", "origin", "kind", "action", "object", "message"]
    row = _row("12:00:00", "operator", "service", "info", "web", "scaled web to 3")
    assert row_matches("", labels, row)
    assert row_matches("web", labels, row)
    assert row_matches("obj:web kind:serv", labels, row)
    assert not row_matches("obj:db", labels, row)
    assert not row_matches("web node", labels, row)
    assert not row_matches("nosuchcolumn:web", labels, row)
    assert row_matches("WEB", labels, row)


def test_render_rows_applies_filter() -> None:
    snap = sample_snapshot()
    rows = render_rows(snap.services, service_columns({}), "name:web", now=NOW)
    assert [r[0].text for r in rows.values()] == ["web"]


def test_drift_and_scaling_progress_are_styled() -> None:
    snap = sample_snapshot()
    api = snap.service_by_name("api")
    web = snap.service_by_name("web")
    assert api is not None and web is not None
    rows = render_rows(snap.services, service_columns({web.id: 4}), now=NOW)
    assert rows[api.id][3].style == DRIFT  # desired 3 (label) vs spec 1
    assert rows[web.id][2] == Cell("2/2 -> 4", PENDING)


def test_node_row_shows_desired_availability_with_source() -> None:
    snap = sample_snapshot()
    node3 = snap.node_by_name("node-3")
    assert node3 is not None
    row = render_rows(snap.nodes, NODE_COLUMNS, now=NOW)[node3.id]
    assert row[4] == Cell("drain (label)", DRIFT)


def test_natural_sort() -> None:
    names = ["web-10", "web-9", "web-1"]
    assert sorted(names, key=natural_key) == ["web-1", "web-9", "web-10"]
    assert Cell("x", sort=1.0).sort_key() < Cell("a", sort=2.0).sort_key()

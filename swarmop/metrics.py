"""The operator's state in Prometheus' text format, for `GET /metrics`.

Built from the same snapshot `GET /status` serves, so the two never disagree.
Gauges only describe now; the one counter (`swarmop_events_total`) counts the
operator's event-log entries since start, which the bounded log itself cannot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from swarmop.status import EventLevel, Outcome, StatusSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KINDS = ("service", "node")


def _metric(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)
    return "\n".join(lines)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_metrics(
    snapshot: StatusSnapshot, *, ready: bool, events_by_level: Mapping[EventLevel, int]
) -> str:
    info = snapshot.operator
    counts = {(kind, outcome): 0 for kind in KINDS for outcome in Outcome}
    retries = 0
    for status in snapshot.objects:
        if status.kind in KINDS:
            counts[(status.kind, status.outcome)] += 1
        retries += status.retries
    blocks = [
        _metric("swarmop_ready", "gauge", "1 once the first full list is done.", [("", ready)]),
        _metric(
            "swarmop_leader",
            "gauge",
            "1 while this instance may write (leader, or the only instance).",
            [("", info.leader)],
        ),
        _metric(
            "swarmop_docker_unreachable",
            "gauge",
            "1 while the Docker API does not answer.",
            [("", info.docker_error is not None)],
        ),
        _metric(
            "swarmop_consul_unreachable",
            "gauge",
            "1 while Consul does not answer (or hides keys from the token).",
            [("", info.consul_error is not None)],
        ),
        _metric(
            "swarmop_objects",
            "gauge",
            "Objects by kind and reconcile outcome.",
            [
                (f'{{kind="{kind}",outcome="{outcome.value}"}}', count)
                for (kind, outcome), count in counts.items()
            ],
        ),
        _metric(
            "swarmop_object_retries",
            "gauge",
            "Retries pending or spent, summed over objects' current statuses.",
            [("", retries)],
        ),
        _metric(
            "swarmop_events_total",
            "counter",
            "Operator event-log entries since start, by level.",
            [(f'{{level="{level.value}"}}', events_by_level.get(level, 0)) for level in EventLevel],
        ),
        _metric(
            "swarmop_start_time_seconds",
            "gauge",
            "When this instance started (Unix time).",
            [("", info.started)],
        ),
    ]
    if info.last_resync is not None:
        blocks.append(
            _metric(
                "swarmop_last_resync_timestamp_seconds",
                "gauge",
                "When the last full list finished (Unix time).",
                [("", info.last_resync)],
            )
        )
    return "\n".join(blocks) + "\n"

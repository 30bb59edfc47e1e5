"""TUI speed against a sandbox with many services: first paint, and one event reflected.

    .venv/bin/python bench/tui.py --sandbox NAME [--services 1000] [--rounds 5] [--keep]

Brings the sandbox up if needed, makes sure N services at 0 replicas exist
(`bench-tui-NNNN`), then runs the real app headless against it:

- first paint: from starting the app to the services table holding all N rows;
- event reflected: from a label change on one service (a versioned spec write)
  to the new desired value showing in that service's row. The relist timer is
  set far out, so only the Docker event can explain the update.

Prints the figures; removes the services afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

import docker
import docker.types
from rich.text import Text
from swarmop.tui.connection import resolve_connection
from swarmop.tui.launch import build_app

from swarmop.clients.swarm_write import update_service
from swarmop.sandbox import Sandbox
from swarmop.sandbox.info import BUSYBOX_IMAGE

PREFIX = "bench-tui-"


def ensure_services(api: docker.APIClient, count: int) -> list[str]:
    existing = {s["Spec"]["Name"]: s["ID"] for s in api.services(filters={"name": PREFIX})}
    started = time.monotonic()
    created = 0
    for index in range(count):
        name = f"{PREFIX}{index:04d}"
        if name in existing:
            continue
        task = docker.types.TaskTemplate(
            container_spec=docker.types.ContainerSpec(BUSYBOX_IMAGE, command=["sleep", "3600"])
        )
        result = api.create_service(
            task,
            name=name,
            labels={"swarmop.bench": "1"},
            mode=docker.types.ServiceMode("replicated", replicas=0),
        )
        existing[name] = result["ID"]
        created += 1
    if created:
        print(f"created {created} services in {time.monotonic() - started:.1f}s", flush=True)
    return [existing[f"{PREFIX}{i:04d}"] for i in range(count)]


def remove_services(api: docker.APIClient) -> None:
    for service in api.services(filters={"name": PREFIX}):
        try:
            api.remove_service(service["ID"])
        except docker.errors.APIError as error:
            print(f"could not remove {service['Spec']['Name']}: {error}", file=sys.stderr)


def set_label(value: str) -> Any:
    def mutate(spec: dict[str, Any]) -> bool:
        labels = spec.setdefault("Labels", {})
        if labels.get("swarmop.replicas") == value:
            return False
        labels["swarmop.replicas"] = value
        return True

    return mutate


async def measure(info: Any, api: docker.APIClient, ids: list[str], rounds: int) -> None:
    connection = resolve_connection(
        docker_host=info.manager_docker_host,
        consul_addr=info.consul_http_addr,
        prefix="swarmop",
        read_only=True,
        environ={},
    )
    started = time.perf_counter()
    app = build_app(connection, interval=3600.0)
    async with app.run_test(size=(170, 40)) as pilot:
        table = app.table("services")
        while len(table.shown) < len(ids):
            await pilot.pause(0.005)
        first_paint = time.perf_counter() - started
        print(f"first paint: {first_paint * 1000:.0f} ms ({len(table.shown)} service rows)")

        target = ids[len(ids) // 2]
        timings: list[float] = []
        for round_index in range(rounds):
            value = str(round_index + 1)
            await asyncio.sleep(0.5)  # let the previous relist settle
            began = time.perf_counter()
            await asyncio.to_thread(update_service, api, target, set_label(value))
            wanted = f"{value} (label)"
            while True:
                cell = table.get_cell(target, "desired")
                if isinstance(cell, Text) and cell.plain == wanted:
                    break
                if time.perf_counter() - began > 60:
                    raise SystemExit(f"the row never showed {wanted!r}")
                await pilot.pause(0.005)
            timings.append(time.perf_counter() - began)
        print(
            "event reflected: "
            + ", ".join(f"{t * 1000:.0f}" for t in timings)
            + f" ms (median {statistics.median(timings) * 1000:.0f} ms, {rounds} rounds)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", default="tui-bench", help="sandbox name (created if absent)")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the bench services")
    args = parser.parse_args()

    sandbox = Sandbox(args.sandbox)
    sandbox.up(nodes=3)
    info = sandbox.info()
    assert info is not None
    api = docker.APIClient(base_url=info.manager_docker_host, version="1.41", timeout=120)
    ids = ensure_services(api, args.services)
    try:
        asyncio.run(measure(info, api, ids, args.rounds))
    finally:
        if not args.keep:
            remove_services(api)
    return 0


if __name__ == "__main__":
    sys.exit(main())

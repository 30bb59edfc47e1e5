"""Watchers: Docker events and Consul blocking queries, turned into touches on the queue.

Events are hints. The Docker watcher lists everything on start, after every
reconnect and on the resync timer (Swarm has no task events and the daemon
keeps only 256), and recycles a stream that stays silent too long (a
half-open connection looks exactly like a quiet swarm).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from swarmop.clients.consul import (
    ConsulKV,
    ConsulResultsFiltered,
    ConsulThrottled,
    ConsulUnavailable,
    TokenBucket,
    next_index,
)
from swarmop.clients.detached import run_detached
from swarmop.clients.docker import EventStream, make_api
from swarmop.desired.keys import Collection, desired_keys_by_object
from swarmop.reactor.context import Context, Key
from swarmop.reactor.recovery import restore_consul
from swarmop.views import object_name

logger = logging.getLogger("swarmop.watch")

Touch = Callable[[Key, Mapping[str, Any] | None], None]
BACKOFF_CAP = 30.0
STREAM_MIN_LIFETIME = 2.0
CONSUL_WAIT = 30.0


def _backoff(failures: int) -> float:
    return float(min(BACKOFF_CAP, 0.5 * math.pow(2, min(failures, 10))))


async def relist(ctx: Context, touch: Touch) -> None:
    """List every service and node; touch each, and each known object that vanished."""
    services = await ctx.docker(ctx.reader.list_services)
    nodes = await ctx.docker(ctx.reader.list_nodes)
    seen: set[Key] = set()
    for kind, items in (("service", services), ("node", nodes)):
        for attrs in items:
            name = object_name(kind, attrs)
            if name:
                key = (kind, name)
                seen.add(key)
                with ctx.lock:
                    ctx.known[key] = str(attrs.get("ID", ""))
    with ctx.lock:
        vanished = [key for key in ctx.known if key not in seen]
    for key in sorted(seen | set(vanished)):
        touch(key, None)
    ctx.board.update_info(last_resync=time.time())


def _event_key(ctx: Context, event: Mapping[str, Any]) -> Key | None:
    kind = event.get("Type")
    if kind not in ("service", "node"):
        return None
    actor = event.get("Actor") or {}
    object_id = str(actor.get("ID", ""))
    name = str((actor.get("Attributes") or {}).get("name") or "")
    with ctx.lock:
        if not name or kind == "node":
            # Node events name the node by ID only; resolve through what we know.
            for (known_kind, known_name), known_id in ctx.known.items():
                if known_kind == kind and known_id == object_id:
                    return (kind, known_name)
    if name:
        return (str(kind), name)
    return None


async def watch_docker(ctx: Context, touch: Touch, ready: Callable[[], None]) -> None:
    failures = 0
    reported_down = False
    while True:
        api: Any = None
        stream: EventStream | None = None
        try:
            # Each connection gets its own client: closing the stream from this side
            # must not disturb the pool the workers read through. Creating it asks
            # the daemon for its API version, so it fails while Docker is down.
            api = await anyio.to_thread.run_sync(
                functools.partial(make_api, ctx.settings.docker, timeout=30.0)
            )
            stream = EventStream(api)
            ctx.event_stream = stream
            send, receive = anyio.create_memory_object_stream[Mapping[str, Any] | None](1000)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_pump, stream, send)
                await relist(ctx, touch)
                ctx.docker_connects += 1
                ready()
                if reported_down:
                    ctx.board.record("operator", "", logging.INFO, "Docker is back; relisted")
                    ctx.board.update_info(docker_error=None)
                    reported_down = False
                connected = time.monotonic()
                await _consume(ctx, receive, touch, stream)
                tg.cancel_scope.cancel()
            if time.monotonic() - connected < STREAM_MIN_LIFETIME:
                # Ended as soon as it opened while lists still work: reconnecting at
                # once would relist everything in a tight loop.
                failures += 1
                await anyio.sleep(_backoff(failures))
            else:
                failures = 0
        except Exception as error:
            failures += 1
            if not reported_down:
                ctx.board.record(
                    "operator", "", logging.WARNING, f"Docker unavailable: {error}; retrying"
                )
                ctx.board.update_info(docker_error=str(error)[:500] or type(error).__name__)
                reported_down = True
            await anyio.sleep(_backoff(failures))
        finally:
            if stream is not None:
                stream.close()
            if api is not None:
                with contextlib.suppress(Exception):
                    api.close()


async def _pump(
    stream: EventStream, send: MemoryObjectSendStream[Mapping[str, Any] | None]
) -> None:
    def blocking() -> None:
        try:
            for event in stream:
                anyio.from_thread.run_sync(send.send_nowait, event)
        except anyio.WouldBlock:
            pass  # the consumer is far behind: end the stream, relist instead
        except Exception as error:
            logger.debug("event pump: %s", error)
        finally:
            with contextlib.suppress(Exception):
                anyio.from_thread.run_sync(send.send_nowait, None)

    try:
        await anyio.to_thread.run_sync(blocking, abandon_on_cancel=True)
    finally:
        stream.close()


async def _consume(ctx: Context, receive: Any, touch: Touch, stream: EventStream) -> None:
    """Until the stream ends or stays silent past the watchdog interval."""
    watchdog = ctx.settings.watchdog_interval
    while True:
        with anyio.move_on_after(watchdog) as scope:
            event = await receive.receive()
        if scope.cancelled_caught:
            logger.info("no Docker event for %.0fs: recycling the event stream", watchdog)
            stream.close()
            return
        if event is None:
            logger.info("Docker event stream ended; reconnecting")
            return
        key = _event_key(ctx, event)
        if key is not None:
            touch(key, event)


async def resync_timer(ctx: Context, touch: Touch) -> None:
    while True:
        await anyio.sleep(ctx.settings.resync_interval)
        try:
            await relist(ctx, touch)
        except Exception as error:
            logger.warning("resync failed: %s", error)


def _read_tree(kv: ConsulKV, prefix: str, index: int) -> tuple[int, dict[str, Any]]:
    return kv.get_tree(prefix, index=index, wait=CONSUL_WAIT)


async def watch_consul(
    ctx: Context, touch: Touch, collection: Collection, ready: Callable[[], None]
) -> None:
    """Blocking queries on `<prefix>/<collection>/`, with Consul's index rules."""
    assert ctx.kv is not None
    kind = "service" if collection == "services" else "node"
    prefix = f"{ctx.prefix}/{collection}/"
    bucket = TokenBucket(rate=ctx.settings.consul_watch_rate, burst=2)
    index = 0
    failures = 0
    reported_down = False
    while True:
        await anyio.sleep(bucket.delay())
        try:
            received, entries = await run_detached(_read_tree, ctx.kv, prefix, index)
        except ConsulThrottled as error:
            failures += 1
            logger.info("Consul throttled (%s); backing off", error)
            await anyio.sleep(_backoff(failures))
            continue
        except ConsulResultsFiltered as error:
            # Hidden keys are not deleted keys: keep what we know, read again later.
            failures += 1
            index = 0
            if not reported_down:
                ctx.board.record(
                    "operator",
                    "",
                    logging.WARNING,
                    f"Consul hides keys under {prefix} from this token (ACLs): keeping the "
                    f"last known desired state; give the token read access to the prefix "
                    f"({error})",
                )
                ctx.board.update_info(consul_error=f"ACLs hide keys under {prefix}")
                reported_down = True
            await anyio.sleep(_backoff(failures))
            continue
        except (ConsulUnavailable, Exception) as error:
            failures += 1
            index = 0
            with ctx.lock:
                ctx.consul_outage = True
            if not reported_down:
                ctx.board.record(
                    "operator", "", logging.WARNING, f"Consul unavailable: {error}; retrying"
                )
                ctx.board.update_info(consul_error=str(error)[:500] or type(error).__name__)
                reported_down = True
            await anyio.sleep(_backoff(failures))
            continue
        if reported_down:
            ctx.board.record("operator", "", logging.INFO, "Consul is back; re-read all keys")
            ctx.board.update_info(consul_error=None)
            reported_down = False
        with ctx.lock:
            returned, ctx.consul_outage = ctx.consul_outage, False
        if returned:
            restore_consul(ctx, touch)
        failures = 0
        index = next_index(index, received)
        current = desired_keys_by_object(ctx.prefix, collection, entries)
        changed: list[Key] = []
        with ctx.lock:
            names = {name for (k, name) in ctx.consul_keys if k == kind} | set(current)
            for name in names:
                key = (kind, name)
                new = current.get(name, {})
                if ctx.consul_keys.get(key, {}) != new:
                    changed.append(key)
                    if new:
                        ctx.consul_keys[key] = new
                    else:
                        ctx.consul_keys.pop(key, None)
            first = collection not in ctx.consul_loaded
            ctx.consul_loaded.add(collection)
        if first:
            ready()
        for key in changed:
            touch(key, {"Type": "consul", "Key": f"{prefix}{key[1]}/"})

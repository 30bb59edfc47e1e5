"""Timers and daemons: one background task per (object, handler) while the object exists."""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import anyio
from anyio.abc import TaskGroup

from swarmop.filters import match_labels
from swarmop.reactor.board import ObjectLogger
from swarmop.reactor.context import Cluster, Context, Key
from swarmop.reactor.invocation import invoke
from swarmop.reactor.patch import Patch, apply_patch
from swarmop.registry import Handler, Reason
from swarmop.views import NodeView, ServiceView


class StopFlag:
    """The `stopped` kwarg of daemons: ``stopped.wait(seconds)`` is True once stopping."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


class Spawner:
    def __init__(self, ctx: Context, task_group: TaskGroup) -> None:
        self._ctx = ctx
        self._tg = task_group
        self._running: dict[tuple[Key, str], tuple[anyio.CancelScope, StopFlag]] = {}

    def sync(self, key: Key, attrs: Mapping[str, Any]) -> None:
        """Start what now matches this object and stop what no longer does.

        Labels decide for timers and daemons; a daemon's `when=` is checked here
        too, on each pass over the object, so it starts once `when=` holds and
        is stopped when it no longer does (a timer checks its `when=` each tick).
        """
        kind = key[0]
        labels = (attrs.get("Spec") or {}).get("Labels") or {}
        handlers = self._ctx.registry.select((Reason.TIMER, Reason.DAEMON), kind)  # type: ignore[arg-type]
        wanted = {
            h.id: h
            for h in handlers
            if match_labels(labels, h.labels)
            and (h.reason is Reason.TIMER or self._daemon_wanted(key, attrs, h))
        }
        for (running_key, hid), (scope, flag) in list(self._running.items()):
            if running_key == key and hid not in wanted:
                flag.set()
                scope.cancel()
                del self._running[(running_key, hid)]
        for hid, handler in wanted.items():
            if (key, hid) not in self._running:
                scope, flag = anyio.CancelScope(), StopFlag()
                self._running[(key, hid)] = (scope, flag)
                self._tg.start_soon(self._run, key, handler, scope, flag)

    def _daemon_wanted(self, key: Key, attrs: Mapping[str, Any], handler: Handler) -> bool:
        if handler.when is None:
            return True
        running = self._running.get((key, handler.id))
        flag = running[1] if running is not None else StopFlag()
        kwargs = self._kwargs_from(key, attrs, time.time(), flag, handler)
        try:
            return bool(handler.when(**kwargs))
        except Exception as error:
            self._ctx.board.record(
                key[0], key[1], logging.WARNING, f"when= filter of {handler.id} failed: {error}"
            )
            return False

    def forget(self, key: Key) -> None:
        for (running_key, hid), (scope, flag) in list(self._running.items()):
            if running_key == key:
                flag.set()
                scope.cancel()
                del self._running[(running_key, hid)]

    def stop_all(self) -> None:
        for scope, flag in self._running.values():
            flag.set()
            scope.cancel()
        self._running.clear()

    async def _run(
        self, key: Key, handler: Handler, scope: anyio.CancelScope, flag: StopFlag
    ) -> None:
        ctx = self._ctx
        kind, name = key
        started = time.time()
        daemon = handler.reason is Reason.DAEMON
        # A sync daemon holds its thread for the object's whole life: it gets a
        # thread of its own, so no number of daemons can take the slots that
        # change handlers and timers share.
        limiter = anyio.CapacityLimiter(1) if daemon else ctx.handler_limiter
        with scope:
            await anyio.sleep(handler.initial_delay)
            while not flag.is_set():
                try:
                    kwargs = await self._kwargs(key, started, flag, handler)
                    if kwargs is None:
                        return
                    # sync() started this daemon because its when= held.
                    if daemon or handler.when is None or handler.when(**kwargs):
                        await invoke(handler.fn, kwargs, limiter)
                        patch: Patch = kwargs["patch"]
                        if patch:
                            await apply_patch(ctx, kind, str(kwargs["id"]), patch)
                    if daemon:
                        return  # a daemon that returns is done for this object
                    await anyio.sleep(handler.interval or 60.0)
                except Exception as error:
                    ctx.board.record(kind, name, logging.WARNING, f"{handler.id} failed: {error}")
                    await anyio.sleep(handler.interval or handler.backoff or 1.0)

    async def _kwargs(
        self, key: Key, started: float, flag: StopFlag, handler: Handler
    ) -> dict[str, Any] | None:
        attrs = await self._ctx.inspect(key)
        if attrs is None:
            return None
        return self._kwargs_from(key, attrs, started, flag, handler)

    def _kwargs_from(
        self,
        key: Key,
        attrs: Mapping[str, Any],
        started: float,
        flag: StopFlag,
        handler: Handler,
    ) -> dict[str, Any]:
        ctx = self._ctx
        kind, name = key
        view: ServiceView | NodeView = (
            ServiceView(attrs, ctx.reader.list_tasks) if kind == "service" else NodeView(attrs)
        )
        labels = (attrs.get("Spec") or {}).get("Labels") or {}
        now = time.time()
        return {
            kind: view,
            "body": attrs,
            "spec": attrs.get("Spec") or {},
            "name": name,
            "id": str(attrs.get("ID", "")),
            "labels": labels,
            "resource": kind,
            "desired": ctx.desired_for(kind, name, labels),
            "memo": ctx.memo,
            "patch": Patch(kind),
            "logger": ObjectLogger(ctx.board, kind, name),
            "cluster": Cluster(ctx, source=handler.id),
            "stopped": flag,
            "started": datetime.datetime.fromtimestamp(started, tz=datetime.UTC),
            "runtime": datetime.timedelta(seconds=now - started),
            "retry": 0,
            "reason": handler.reason.value,
        }

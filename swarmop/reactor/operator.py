"""The operator's main loop: wire clients, watchers, queue, publisher and HTTP together."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from swarmop.clients.consul import ConsulKV
from swarmop.clients.docker import DockerReader, LazyAPIClient
from swarmop.desired.keys import Collection
from swarmop.errors import PermanentError, TemporaryError
from swarmop.ha import OPEN_GATE, Leadership
from swarmop.planning.progress import backoff_delay
from swarmop.reactor import watchers
from swarmop.reactor.board import StatusBoard
from swarmop.reactor.context import Cluster, Context, Key
from swarmop.reactor.http import serve_http
from swarmop.reactor.invocation import invoke
from swarmop.reactor.processing import process
from swarmop.reactor.publisher import publish_once, run_publisher
from swarmop.reactor.queueing import ObjectQueue
from swarmop.reactor.recovery import recheck_stored
from swarmop.reactor.spawner import Spawner
from swarmop.reactor.store import (
    ConsulStateStore,
    FileStateStore,
    MemoryStateStore,
    StateStore,
)
from swarmop.registry import Reason, Registry
from swarmop.settings import Settings
from swarmop.status import OperatorInfo

logger = logging.getLogger("swarmop.operator")

SHUTDOWN_GRACE = 10.0
CONSUL_FIRST_LOAD_WAIT = 10.0


def new_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Operator:
    """One operator instance. `run()` until `stop()`; safe to stop from any task."""

    def __init__(
        self, settings: Settings, registry: Registry, leadership: Leadership | None = None
    ) -> None:
        self.settings = settings
        self.leadership = leadership
        self.registry = registry
        self.instance = settings.instance or new_instance_id()
        self.board = StatusBoard(
            OperatorInfo(
                instance=self.instance,
                pid=os.getpid(),
                host=socket.gethostname(),
                started=time.time(),
                leader=leadership is None,
            )
        )
        self._stop = anyio.Event()
        self.http_port: int | None = None
        self.context: Context | None = None
        self.queue: ObjectQueue | None = None

    def stop(self) -> None:
        self._stop.set()
        if self.leadership is not None:
            self.leadership.resign()  # hand over now: writes stop, the lock is released

    async def run(self, *, on_ready: Callable[[], None] | None = None) -> None:
        settings = self.settings
        api = LazyAPIClient(settings.docker)
        kv = ConsulKV(settings.consul) if settings.consul is not None else None
        if kv is not None and self.leadership is not None:
            kv = self.leadership.guard(kv)  # every write carries check-session on the lock
        store: StateStore
        if kv is not None:
            store = ConsulStateStore(kv, settings.prefix)
        elif settings.state_dir is not None:
            store = FileStateStore(settings.state_dir)
        else:
            store = MemoryStateStore()
        ctx = Context(
            settings=settings,
            registry=self.registry,
            api=api,
            reader=DockerReader(api),
            kv=kv,
            store=store,
            board=self.board,
            gate=self.leadership.gate if self.leadership is not None else OPEN_GATE,
        )
        self.context = ctx
        if self.leadership is None:
            self.board.record(
                "operator",
                "",
                logging.WARNING,
                "NOT highly available: leader election is off (no Consul, or --no-ha); "
                "run exactly one instance of this operator",
            )
        if kv is None:
            self.board.record(
                "operator",
                "",
                logging.WARNING,
                "Consul is not configured: running from labels alone; handler progress is "
                + (
                    f"kept in {settings.state_dir}"
                    if settings.state_dir is not None
                    else "kept in memory only (a restart reruns handlers; see --state-dir)"
                )
                + "; status is served only over HTTP",
            )
        else:
            self.board.record(
                "operator",
                "",
                logging.INFO,
                f"using Consul at {settings.consul.address} (token from "  # type: ignore[union-attr]
                f"{settings.consul.token_source}), prefix {settings.prefix}/",  # type: ignore[union-attr]
            )

        try:
            async with anyio.create_task_group() as outer:
                if settings.http is not None:
                    host, port = settings.http
                    outer.start_soon(serve_http, host, port, self.board, self._probes, self._bound)
                if kv is not None and self.leadership is not None:
                    outer.start_soon(self.leadership.run)
                    # Only the leader publishes status and <prefix>/operator.
                    outer.start_soon(
                        self.leadership.while_leading,
                        run_publisher,
                        self.board,
                        kv,
                        settings.prefix,
                    )
                elif kv is not None:
                    outer.start_soon(run_publisher, self.board, kv, settings.prefix)
                await self._run_operator_handlers(ctx, Reason.STARTUP)
                await self._run_reactor(ctx, on_ready)
                outer.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._shutdown(ctx)

    def _bound(self, port: int) -> None:
        self.http_port = port

    async def _run_reactor(self, ctx: Context, on_ready: Callable[[], None] | None) -> None:
        loaded: set[str] = set()
        consul_ready = anyio.Event()
        docker_ready = anyio.Event()
        folders: tuple[Collection, ...] = ("services", "nodes")

        def consul_loaded(folder: str) -> Callable[[], None]:
            def mark() -> None:
                loaded.add(folder)
                if loaded >= set(folders):
                    consul_ready.set()

            return mark

        def mark_docker() -> None:
            if not docker_ready.is_set():
                docker_ready.set()
                self.board.ready = True
                self.board.record("operator", "", logging.INFO, "initial list done; ready")
                if on_ready is not None:
                    on_ready()

        async with anyio.create_task_group() as workers:
            queue = ObjectQueue(
                workers,
                lambda key, hints: self._process(ctx, key, hints),
                ctx.object_limiter,
                on_error=self._object_error,
            )
            self.queue = queue
            spawner = Spawner(ctx, workers)
            ctx.spawner = spawner  # type: ignore[attr-defined]

            def touch(key: Key, hint: Mapping[str, Any] | None) -> None:
                queue.touch(key, hint)

            async with anyio.create_task_group() as watching:
                if ctx.kv is not None:
                    for folder in folders:
                        watching.start_soon(
                            watchers.watch_consul, ctx, touch, folder, consul_loaded(folder)
                        )
                    # Act on the full desired state from the start, not on labels
                    # first and Consul keys a moment later.
                    with anyio.move_on_after(CONSUL_FIRST_LOAD_WAIT):
                        await consul_ready.wait()
                watching.start_soon(watchers.watch_docker, ctx, touch, mark_docker)
                watching.start_soon(watchers.resync_timer, ctx, touch)
                if self.leadership is not None:

                    async def elected() -> None:
                        recheck_stored(ctx)
                        await watchers.relist(ctx, touch)

                    # Elected: relist so every object is reconciled (a standby skipped
                    # them); demoted: timers and daemons stop with the writes.
                    watching.start_soon(
                        self.leadership.follow, self.board, elected, spawner.stop_all
                    )
                await self._stop.wait()
                self.board.record("operator", "", logging.INFO, "stopping")
                watching.cancel_scope.cancel()
            ctx.stopping = True
            queue.close()
            spawner.stop_all()
            # In-flight handlers get a grace period to finish; then they are abandoned
            # (sync handler threads run to completion in the background). No handler
            # starts meanwhile: a retry that falls due waits, stored, for the next run.
            with anyio.move_on_after(SHUTDOWN_GRACE):
                # Polling: passes end on their own, there is no single event to await.
                while queue.busy():  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            workers.cancel_scope.cancel()

    async def _process(self, ctx: Context, key: Key, hints: list[Any]) -> float | None:
        if not ctx.gate.allows():
            return None  # a standby watches only; the relist on election catches up
        return await process(ctx, key, hints)

    def _object_error(self, key: Key, error: Exception) -> None:
        self.board.record(key[0], key[1], logging.WARNING, f"processing failed: {error}")

    async def _run_operator_handlers(self, ctx: Context, reason: Reason) -> None:
        for handler in ctx.registry.select((reason,)):
            retries = 0
            started = time.time()
            while True:
                kwargs = {
                    "memo": ctx.memo,
                    "logger": logging.getLogger("swarmop.operator"),
                    "settings": ctx.settings,
                    "cluster": Cluster(ctx),
                    "retry": retries,
                    "reason": reason.value,
                }
                try:
                    await invoke(handler.fn, kwargs, ctx.handler_limiter)
                    break
                except TemporaryError as error:
                    delay = error.delay
                except PermanentError as error:
                    self.board.record(
                        "operator",
                        "",
                        logging.ERROR,
                        f"{reason.value} handler {handler.id} failed: {error}",
                    )
                    break
                except Exception as error:
                    delay = backoff_delay(handler.backoff, retries + 1)
                    self.board.record(
                        "operator",
                        "",
                        logging.WARNING,
                        f"{reason.value} handler {handler.id} crashed: {error}",
                    )
                retries += 1
                if (handler.retries is not None and retries > handler.retries) or (
                    handler.timeout is not None and time.time() - started > handler.timeout
                ):
                    self.board.record(
                        "operator",
                        "",
                        logging.ERROR,
                        f"{reason.value} handler {handler.id} gave up",
                    )
                    break
                await anyio.sleep(delay)

    async def _probes(self) -> dict[str, object]:
        results: dict[str, object] = {"ready": self.board.ready}
        ctx = self.context
        if ctx is None:
            return results
        for handler in ctx.registry.select((Reason.PROBE,)):
            try:
                with anyio.fail_after(5):
                    results[handler.id] = await invoke(
                        handler.fn,
                        {"memo": ctx.memo, "cluster": Cluster(ctx)},
                        ctx.handler_limiter,
                    )
            except Exception as error:
                results[handler.id] = {"error": str(error)}
        return results

    async def _shutdown(self, ctx: Context) -> None:
        with anyio.move_on_after(SHUTDOWN_GRACE):
            try:
                await self._run_operator_handlers(ctx, Reason.CLEANUP)
            except Exception as error:
                logger.warning("cleanup handlers: %s", error)
        self.board.ready = False
        # With leader election the lock is already released here and the next
        # leader owns the published status; only a lone instance says goodbye.
        if ctx.kv is not None and self.leadership is None:
            with anyio.move_on_after(5):
                try:
                    await anyio.to_thread.run_sync(
                        publish_once, self.board, ctx.kv, ctx.prefix, abandon_on_cancel=True
                    )
                except Exception as error:
                    logger.debug("final publish: %s", error)
        try:
            ctx.api.close()
        except Exception as error:
            logger.debug("closing Docker client: %s", error)


async def run(settings: Settings, registry: Registry) -> None:
    await Operator(settings, registry).run()

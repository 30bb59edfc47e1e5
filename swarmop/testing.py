"""OperatorRunner: run an operator in a background thread inside a test, like KopfRunner.

    with OperatorRunner(settings, registry=registry) as runner:
        ...  # change labels / Consul keys, then wait for handler calls
    assert runner.exception is None

The operator runs against the real swarm the settings point at. Leaving the
block stops it (watchers first, then in-flight handlers get a grace period).
"""

from __future__ import annotations

import threading
from types import TracebackType

import anyio
import anyio.from_thread

from swarmop.reactor.board import StatusBoard
from swarmop.reactor.operator import Operator
from swarmop.registry import Registry, default_registry
from swarmop.settings import Settings
from swarmop.status import StatusSnapshot


class OperatorRunner:
    def __init__(
        self,
        settings: Settings,
        *,
        registry: Registry | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.registry = registry or default_registry
        self.ready_timeout = ready_timeout
        self.exception: BaseException | None = None
        self.operator: Operator | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._cm: object | None = None

    @property
    def board(self) -> StatusBoard:
        assert self.operator is not None, "the runner is not started"
        return self.operator.board

    def snapshot(self) -> StatusSnapshot:
        return self.board.snapshot()

    def __enter__(self) -> OperatorRunner:
        cm = anyio.from_thread.start_blocking_portal()
        self._cm = cm
        self._portal = cm.__enter__()
        self.operator = Operator(self.settings, self.registry)
        self._portal.start_task_soon(self._main)
        if not self._ready.wait(self.ready_timeout):
            self.__exit__(None, None, None)
            raise TimeoutError(
                f"the operator was not ready within {self.ready_timeout:g}s: {self.exception}"
            )
        if self.exception is not None:
            raise RuntimeError("the operator failed to start") from self.exception
        return self

    async def _main(self) -> None:
        assert self.operator is not None
        try:
            await self.operator.run(on_ready=self._ready.set)
        except BaseException as error:
            self.exception = error
            self._ready.set()
            if not isinstance(error, Exception):
                raise
        finally:
            self._done.set()

    def stop(self) -> None:
        if self._portal is not None and self.operator is not None and not self._done.is_set():
            self._portal.call(self.operator.stop)
        self._done.wait(60)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            cm = self._cm
            self._cm = None
            self._portal = None
            if cm is not None:
                cm.__exit__(None, None, None)  # type: ignore[attr-defined]

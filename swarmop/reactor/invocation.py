"""Calling one handler: only the kwargs it accepts, sync ones in a worker thread."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.to_thread


@functools.lru_cache(maxsize=1024)
def _accepted(fn: Callable[..., Any]) -> frozenset[str] | None:
    """Names the function takes as keywords; None when it takes **kwargs."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )


def select_kwargs(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    accepted = _accepted(fn)
    if accepted is None:
        return dict(kwargs)
    return {name: value for name, value in kwargs.items() if name in accepted}


async def invoke(
    fn: Callable[..., Any], kwargs: Mapping[str, Any], limiter: anyio.CapacityLimiter
) -> Any:
    chosen = select_kwargs(fn, kwargs)
    if inspect.iscoroutinefunction(fn):
        return await fn(**chosen)
    # A sync handler cannot be interrupted: on shutdown its thread is abandoned
    # (it finishes in the background) instead of blocking the operator's exit.
    return await anyio.to_thread.run_sync(
        functools.partial(fn, **chosen), limiter=limiter, abandon_on_cancel=True
    )

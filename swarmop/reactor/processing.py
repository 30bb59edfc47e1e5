"""One pass over one object: decide the cycle, run its handlers, store progress, publish status."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from swarmop.desired import DesiredState
from swarmop.errors import BlockedError, PermanentError, TemporaryError
from swarmop.filters import match_labels, match_value, resolve_field
from swarmop.ha.gate import NotLeaderError
from swarmop.planning.diff import diff
from swarmop.planning.essence import digest, essence
from swarmop.planning.progress import (
    Cycle,
    HandlerProgress,
    ObjectState,
    backoff_delay,
    restart_cycle,
)
from swarmop.reactor.board import ObjectLogger
from swarmop.reactor.context import Cluster, Context, Key
from swarmop.reactor.invocation import invoke
from swarmop.reactor.patch import Patch, apply_patch
from swarmop.registry import Handler, Reason
from swarmop.status import DesiredEntry, ObjectStatus, Outcome
from swarmop.views import NodeView, ServiceView

logger = logging.getLogger("swarmop.processing")

MESSAGE_LIMIT = 2000

Hint = Mapping[str, Any]


def _view(ctx: Context, kind: str, attrs: Mapping[str, Any]) -> ServiceView | NodeView:
    if kind == "service":
        return ServiceView(attrs, ctx.reader.list_tasks)
    return NodeView(attrs)


def _labels(attrs: Mapping[str, Any]) -> Mapping[str, str]:
    return dict((attrs.get("Spec") or {}).get("Labels") or {})


def _field_changed(handler: Handler, old: Any, new: Any) -> bool:
    if handler.field is None:
        return True
    before = resolve_field(old, handler.field) if old is not None else None
    after = resolve_field(new, handler.field)
    if before == after:
        return False
    if handler.has_old and not match_value(before, handler.old):
        return False
    return not (handler.has_new and not match_value(after, handler.new))


def select_handlers(
    ctx: Context,
    *,
    kind: str,
    reasons: tuple[Reason, ...],
    attrs: Mapping[str, Any],
    old: Any,
    new: Any,
    kwargs: Mapping[str, Any],
) -> list[Handler]:
    """Handlers for these reasons whose filters match this object and this change."""
    chosen: list[Handler] = []
    labels = _labels(attrs)
    for handler in ctx.registry.select(reasons, "service" if kind == "service" else "node"):
        if not match_labels(labels, handler.labels):
            continue
        if handler.reason in (Reason.UPDATE, Reason.FIELD) and not _field_changed(
            handler, old, new
        ):
            continue
        if (
            handler.reason is Reason.CREATE
            and handler.field is not None
            and not _field_changed(handler, None, new)
        ):
            continue
        if handler.when is not None:
            try:
                if not handler.when(**kwargs):
                    continue
            except Exception as error:
                ctx.board.record(
                    kind,
                    str(kwargs.get("name")),
                    logging.WARNING,
                    f"when= filter of {handler.id} failed: {error}",
                )
                continue
        chosen.append(handler)
    return chosen


def _base_kwargs(
    ctx: Context,
    *,
    kind: str,
    name: str,
    attrs: Mapping[str, Any],
    desired: DesiredState,
    old: Any,
    new: Any,
    reason: str,
) -> dict[str, Any]:
    view = _view(ctx, kind, attrs)
    return {
        kind: view,
        "body": attrs,
        "spec": attrs.get("Spec") or {},
        "meta": {"id": attrs.get("ID"), "version": (attrs.get("Version") or {}).get("Index")},
        "name": name,
        "id": str(attrs.get("ID", "")),
        "labels": _labels(attrs),
        "resource": kind,
        "desired": desired,
        "old": old,
        "new": new,
        "diff": diff(old, new),
        "memo": ctx.memo,
        "reason": reason,
        "cluster": Cluster(ctx),
        "logger": ObjectLogger(ctx.board, kind, name),
    }


async def process(ctx: Context, key: Key, hints: list[Hint]) -> float | None:
    """Returns the wall-clock time to look at this object again, or None."""
    kind, name = key
    attrs = await ctx.inspect(key)
    state = await ctx.stored(ctx.store.load, key)
    spawner = getattr(ctx, "spawner", None)

    if attrs is None:
        with ctx.lock:
            ctx.known.pop(key, None)
        if spawner is not None:
            spawner.forget(key)
        if state is None:
            ctx.board.remove(key)  # type: ignore[arg-type]
            return None
        return await _delete_cycle(ctx, key, state)

    object_id = str(attrs.get("ID", ""))
    with ctx.lock:
        ctx.known[key] = object_id
    desired = ctx.desired_for(kind, name, _labels(attrs))
    new = essence(attrs, desired)
    target = digest(new)
    same_object = state is not None and state.id == object_id
    old = state.last if state is not None and same_object else None
    first_in_run = key not in ctx.resumed
    ctx.resumed.add(key)

    cycle = state.cycle if same_object and state is not None else None
    if cycle is not None and cycle.target != target and cycle.reason == "delete":
        cycle = None
    reasons: tuple[Reason, ...]
    if cycle is None or cycle.target != target:
        base = _base_kwargs(
            ctx, kind=kind, name=name, attrs=attrs, desired=desired, old=old, new=new, reason=""
        )
        if not same_object or old is None:
            # Never fully handled: a change that arrives while the create cycle is
            # unfinished (the handler's own write, a label edit) restarts the create
            # cycle on the new state; switching to "update" would drop a create
            # handler waiting for its retry.
            reason, reasons = "create", (Reason.CREATE, Reason.FIELD)
        elif first_in_run and digest(old) == target:
            reason, reasons = "resume", (Reason.RESUME,)
        elif first_in_run:
            reason, reasons = "resume", (Reason.RESUME, Reason.UPDATE, Reason.FIELD)
        elif digest(old) != target:
            reason, reasons = "update", (Reason.UPDATE, Reason.FIELD)
        else:
            reason, reasons = "", ()
        base["reason"] = reason
        chosen = (
            select_handlers(
                ctx, kind=kind, reasons=reasons, attrs=attrs, old=old, new=new, kwargs=base
            )
            if reasons
            else []
        )
        if chosen:
            cycle = restart_cycle(cycle, reason, target, tuple(h.id for h in chosen), time.time())
        else:
            cycle = None
            if state is None or not same_object or digest(old) != target or state.cycle:
                await ctx.stored(ctx.store.save, key, ObjectState(object_id, new, None))
            _publish(
                ctx,
                kind=kind,
                name=name,
                object_id=object_id,
                desired=desired,
                cycle=None,
                last_handler=None,
            )

    wake: float | None = None
    if cycle is not None:
        wake = await _run_cycle(
            ctx,
            key=key,
            object_id=object_id,
            attrs=attrs,
            desired=desired,
            old=old,
            new=new,
            cycle=cycle,
        )
    await _event_handlers(ctx, kind=kind, name=name, attrs=attrs, desired=desired, hints=hints)
    if spawner is not None:
        spawner.sync(key, attrs)
    return wake


async def _run_cycle(
    ctx: Context,
    *,
    key: Key,
    object_id: str,
    attrs: Mapping[str, Any],
    desired: DesiredState,
    old: Any,
    new: dict[str, Any],
    cycle: Cycle,
) -> float | None:
    kind, name = key
    handlers = {h.id: h for h in ctx.registry.select(_reasons_for(cycle.reason), kind)}  # type: ignore[arg-type]
    last_handler: str | None = None
    for hid in cycle.pending():
        if ctx.stopping:
            break  # what is left stays stored as progress: the next run resumes it
        handler = handlers.get(hid)
        progress = cycle.handlers.get(hid) or HandlerProgress(started=time.time())
        if handler is None:
            # Registered in a previous run but gone now: nothing can finish it.
            cycle = cycle.with_handler(hid, HandlerProgress(progress.started, done=True))
            continue
        now = time.time()
        if progress.delayed_until is not None and progress.delayed_until > now:
            continue
        last_handler = hid
        patch = Patch(kind)
        kwargs = _base_kwargs(
            ctx,
            kind=kind,
            name=name,
            attrs=attrs,
            desired=desired,
            old=old,
            new=new,
            reason=cycle.reason,
        )
        if handler.field is not None:
            kwargs["old"] = resolve_field(old, handler.field) if old is not None else None
            kwargs["new"] = resolve_field(new, handler.field)
            kwargs["diff"] = diff(kwargs["old"], kwargs["new"])
        kwargs.update(
            cluster=Cluster(ctx, source=hid),
            patch=patch,
            retry=progress.retries,
            started=datetime.datetime.fromtimestamp(progress.started, tz=datetime.UTC),
            runtime=datetime.timedelta(seconds=max(0.0, now - progress.started)),
        )
        try:
            result = await invoke(handler.fn, kwargs, ctx.handler_limiter)
            if patch:
                written = await apply_patch(ctx, kind, object_id, patch)
                if written is not None:
                    # Our own write: what we wrote is what we have handled, so the
                    # event it causes finds nothing new (no reconcile loop).
                    attrs = {**attrs, "Spec": written}
                    new = essence(attrs, desired)
                    cycle = Cycle(cycle.reason, digest(new), cycle.handlers, cycle.order)
            # A returned string is the ok status message ("3/3 replicas running").
            message = result.strip()[:MESSAGE_LIMIT] if isinstance(result, str) else ""
            progress = HandlerProgress(
                progress.started, progress.retries, done=True, message=message
            )
        except TemporaryError as error:
            progress = _after_temporary(
                ctx, kind=kind, name=name, handler=handler, progress=progress, error=error
            )
        except BlockedError as error:
            text = str(error) or type(error).__name__
            if error.recheck is not None:
                # Another object's state may lift the block: look again later.
                progress = HandlerProgress(
                    progress.started,
                    progress.retries,
                    delayed_until=time.time() + error.recheck,
                    message=text,
                    blocked=True,
                )
                if cycle.handlers.get(hid, progress).message != text:
                    ctx.board.record(
                        kind,
                        name,
                        logging.WARNING,
                        f"{hid} blocked: {text}; re-checking every {error.recheck:g}s",
                    )
            else:
                progress = HandlerProgress(
                    progress.started,
                    progress.retries,
                    done=True,
                    failed=True,
                    message=text,
                    blocked=True,
                )
                ctx.board.record(kind, name, logging.WARNING, f"{hid} blocked: {text}")
        except PermanentError as error:
            progress = HandlerProgress(
                progress.started, progress.retries, done=True, failed=True, message=str(error)
            )
            ctx.board.record(kind, name, logging.ERROR, f"{hid} failed permanently: {error}")
        except Exception as error:
            progress = _after_crash(
                ctx, kind=kind, name=name, handler=handler, progress=progress, error=error
            )
        cycle = cycle.with_handler(hid, progress)
        await ctx.stored(ctx.store.save, key, ObjectState(object_id, old, cycle))

    if cycle.finished:
        await ctx.stored(ctx.store.save, key, ObjectState(object_id, new, None))
    _publish(
        ctx,
        kind=kind,
        name=name,
        object_id=object_id,
        desired=desired,
        cycle=cycle,
        last_handler=last_handler,
    )
    return None if cycle.finished else cycle.next_wake()


def _given_up(
    ctx: Context,
    *,
    kind: str,
    name: str,
    handler: Handler,
    progress: HandlerProgress,
    retries: int,
    message: str,
) -> HandlerProgress | None:
    """The failed end of a handler whose `retries` are used up or whose `timeout`
    has passed, after this attempt; None while it may try again."""
    if handler.retries is not None and retries > handler.retries:
        ctx.board.record(
            kind,
            name,
            logging.ERROR,
            f"{handler.id} failed after {handler.retries} retries: {message}",
        )
        return HandlerProgress(
            progress.started,
            retries,
            done=True,
            failed=True,
            message=f"retries exhausted: {message}",
        )
    if handler.timeout is not None and time.time() - progress.started > handler.timeout:
        ctx.board.record(
            kind,
            name,
            logging.ERROR,
            f"{handler.id} timed out after {handler.timeout:g}s: {message}",
        )
        return HandlerProgress(
            progress.started, retries, done=True, failed=True, message=f"timed out: {message}"
        )
    return None


def _after_temporary(
    ctx: Context,
    *,
    kind: str,
    name: str,
    handler: Handler,
    progress: HandlerProgress,
    error: TemporaryError,
) -> HandlerProgress:
    message = str(error) or type(error).__name__
    if isinstance(error, NotLeaderError):
        # The write was refused because this instance stopped leading: not the
        # handler's failure, so it uses up none of its retries (the new leader
        # takes the object over).
        return HandlerProgress(
            progress.started,
            progress.retries,
            delayed_until=time.time() + error.delay,
            message=message,
        )
    retries = progress.retries + 1
    given_up = _given_up(
        ctx,
        kind=kind,
        name=name,
        handler=handler,
        progress=progress,
        retries=retries,
        message=message,
    )
    if given_up is not None:
        return given_up
    ctx.board.record(
        kind, name, logging.INFO, f"{handler.id}: {message}; retrying in {error.delay:g}s"
    )
    return HandlerProgress(
        progress.started, retries, delayed_until=time.time() + error.delay, message=message
    )


def _after_crash(
    ctx: Context,
    *,
    kind: str,
    name: str,
    handler: Handler,
    progress: HandlerProgress,
    error: Exception,
) -> HandlerProgress:
    retries = progress.retries + 1
    message = f"{type(error).__name__}: {error}"
    given_up = _given_up(
        ctx,
        kind=kind,
        name=name,
        handler=handler,
        progress=progress,
        retries=retries,
        message=message,
    )
    if given_up is not None:
        return given_up
    delay = backoff_delay(handler.backoff, retries)
    ctx.board.record(
        kind,
        name,
        logging.WARNING,
        f"{handler.id} crashed ({message}); retry {retries} in {delay:g}s",
    )
    return HandlerProgress(
        progress.started, retries, delayed_until=time.time() + delay, message=message
    )


def _reasons_for(reason: str) -> tuple[Reason, ...]:
    return {
        "create": (Reason.CREATE, Reason.FIELD),
        "update": (Reason.UPDATE, Reason.FIELD),
        "resume": (Reason.RESUME, Reason.UPDATE, Reason.FIELD),
        "delete": (Reason.DELETE,),
    }.get(reason, ())


async def _delete_cycle(ctx: Context, key: Key, state: ObjectState) -> float | None:
    kind, name = key
    last = state.last or {}
    attrs: dict[str, Any] = {"ID": state.id, "Spec": last.get("spec") or {}}
    if kind == "node":
        attrs["Description"] = {"Hostname": name}
    desired = ctx.desired_for(kind, name, _labels(attrs))
    target = "deleted"
    cycle = state.cycle if state.cycle is not None and state.cycle.reason == "delete" else None
    if cycle is None:
        base = _base_kwargs(
            ctx,
            kind=kind,
            name=name,
            attrs=attrs,
            desired=desired,
            old=state.last,
            new=None,
            reason="delete",
        )
        chosen = select_handlers(
            ctx,
            kind=kind,
            reasons=(Reason.DELETE,),
            attrs=attrs,
            old=state.last,
            new=None,
            kwargs=base,
        )
        if not chosen:
            await ctx.stored(ctx.store.delete, key)
            ctx.board.remove(key)  # type: ignore[arg-type]
            return None
        cycle = restart_cycle(None, "delete", target, tuple(h.id for h in chosen), time.time())
    wake = await _run_cycle(
        ctx,
        key=key,
        object_id=state.id,
        attrs=attrs,
        desired=desired,
        old=state.last,
        new={},
        cycle=cycle,
    )
    if wake is None:
        await ctx.stored(ctx.store.delete, key)
        ctx.board.remove(key)  # type: ignore[arg-type]
    return wake


async def _event_handlers(
    ctx: Context,
    *,
    kind: str,
    name: str,
    attrs: Mapping[str, Any],
    desired: DesiredState,
    hints: list[Hint],
) -> None:
    handlers = ctx.registry.select((Reason.EVENT,), kind)  # type: ignore[arg-type]
    if not handlers or not hints or ctx.stopping:
        return
    for hint in hints:
        kwargs = _base_kwargs(
            ctx,
            kind=kind,
            name=name,
            attrs=attrs,
            desired=desired,
            old=None,
            new=None,
            reason="event",
        )
        kwargs["event"] = hint
        for handler in select_handlers(
            ctx, kind=kind, reasons=(Reason.EVENT,), attrs=attrs, old=None, new=None, kwargs=kwargs
        ):
            try:
                await invoke(handler.fn, kwargs, ctx.handler_limiter)
            except Exception as error:
                ctx.board.record(
                    kind, name, logging.WARNING, f"event handler {handler.id} failed: {error}"
                )


def _publish(
    ctx: Context,
    *,
    kind: str,
    name: str,
    object_id: str,
    desired: DesiredState,
    cycle: Cycle | None,
    last_handler: str | None,
) -> None:
    previous = ctx.board.base((kind, name))  # type: ignore[arg-type]
    entries = {item.field: DesiredEntry(_plain(item.value), item.source.value) for item in desired}
    outcome, message, retries, next_retry = Outcome.OK, "", 0, None
    if cycle is not None:
        outcome, message, retries = summarize_cycle(cycle)
        if outcome in (Outcome.PENDING, Outcome.BLOCKED):
            next_retry = cycle.next_wake()
    if outcome is Outcome.OK and desired.errors:
        outcome = Outcome.BLOCKED
        message = "; ".join(str(error) for error in desired.errors)
    if cycle is None and previous is not None and outcome is Outcome.OK:
        # Nothing ran now: keep the record of the last run.
        last_run, handler = previous.last_run, previous.handler
        if previous.outcome in (Outcome.ERROR, Outcome.BLOCKED) and not desired.errors:
            outcome, message = previous.outcome, previous.message
            if previous.message.startswith(("Consul key", "label")):
                outcome, message = Outcome.OK, ""
        elif previous.outcome is Outcome.OK and not desired.errors:
            message = previous.message  # the last successful run's own message
    else:
        last_run = time.time() if last_handler else (previous.last_run if previous else None)
        handler = last_handler or (previous.handler if previous else None)
    ctx.board.set_status(
        ObjectStatus(
            kind="service" if kind == "service" else "node",
            name=name,
            id=object_id,
            last_run=last_run,
            handler=handler,
            outcome=outcome,
            message=message,
            retries=retries,
            next_retry=next_retry,
            desired=entries,
        )
    )


def _refused(progress: HandlerProgress) -> bool:
    """A finished handler that refused on purpose (progress stored before the
    `blocked` flag existed marks it in the message)."""
    return progress.blocked or progress.message.startswith("blocked: ")


def summarize_cycle(cycle: Cycle) -> tuple[Outcome, str, int]:
    """One outcome, message and retry count for a cycle's handlers.

    Unfinished handlers make it pending (blocked when one of them raised
    BlockedError and waits for its recheck); finished ones that failed make it
    error (blocked when they all refused on purpose); otherwise it is ok, with
    the messages the handlers returned.
    """
    progresses = [cycle.handlers[hid] for hid in cycle.order if hid in cycle.handlers]
    pending = [p for p in progresses if not p.done]
    failed = [p for p in progresses if p.done and p.failed]
    if pending:
        blocked = [p for p in pending if p.blocked]
        outcome = Outcome.BLOCKED if blocked else Outcome.PENDING
        ranked = blocked + [p for p in pending if not p.blocked]
        return outcome, _join(p.message for p in ranked), max(p.retries for p in pending)
    if failed:
        refused = [p for p in failed if _refused(p)]
        outcome = Outcome.BLOCKED if len(refused) == len(failed) else Outcome.ERROR
        ranked = [p for p in failed if not _refused(p)] + refused
        texts = (p.message.removeprefix("blocked: ") if _refused(p) else p.message for p in ranked)
        return outcome, _join(texts), max(p.retries for p in failed)
    return Outcome.OK, _join(p.message for p in progresses), 0


def _join(texts: Iterable[str]) -> str:
    return "; ".join(dict.fromkeys(text for text in texts if text))[:MESSAGE_LIMIT]


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    return value

"""Where per-object progress and last-handled state live.

With Consul: ``<prefix>/state/services/<name>`` and ``<prefix>/state/nodes/<hostname>``,
written with CAS on the ModifyIndex last seen. Without Consul: in files under
``--state-dir`` (``<dir>/services/<name>.json``, written atomically) or, without
one, in memory. Never on the swarm: a label write would itself be an event.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Protocol

from swarmop.clients.consul import ConsulKV, KVEntry
from swarmop.planning.progress import ObjectState
from swarmop.reactor.board import about

logger = logging.getLogger("swarmop.state")

Key = tuple[str, str]
_COLLECTIONS = {"service": "services", "node": "nodes"}


class StateStore(Protocol):
    def load(self, key: Key) -> ObjectState | None: ...
    def save(self, key: Key, state: ObjectState) -> None: ...
    def delete(self, key: Key) -> None: ...


class MemoryStateStore:
    def __init__(self) -> None:
        self._states: dict[Key, ObjectState] = {}
        self._lock = threading.Lock()

    def load(self, key: Key) -> ObjectState | None:
        with self._lock:
            return self._states.get(key)

    def save(self, key: Key, state: ObjectState) -> None:
        with self._lock:
            self._states[key] = state

    def delete(self, key: Key) -> None:
        with self._lock:
            self._states.pop(key, None)


class FileStateStore:
    """One JSON file per object; a write goes to a temporary file in the same
    directory, is flushed to disk and renamed over the old one, so a crash
    leaves either the old state or the new one, never a torn file."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        for collection in _COLLECTIONS.values():
            (self.directory / collection).mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def path(self, key: Key) -> Path:
        kind, name = key
        # Quoted, so no name can point outside the directory.
        return self.directory / _COLLECTIONS[kind] / f"{urllib.parse.quote(name, safe='')}.json"

    def load(self, key: Key) -> ObjectState | None:
        try:
            raw = self.path(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return ObjectState.from_json(raw)
        except ValueError as error:
            logger.warning(
                "%s: ignoring unreadable stored state (%s)",
                self.path(key),
                error,
                extra=about(*key),
            )
            return None

    def save(self, key: Key, state: ObjectState) -> None:
        target = self.path(key)
        with self._lock:
            handle, temporary = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
            )
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    file.write(state.to_json())
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            _fsync_directory(target.parent)

    def delete(self, key: Key) -> None:
        with self._lock:
            self.path(key).unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ConsulStateStore:
    """Blocking calls: run them in a worker thread.

    Entries are cached after the first read. After a Consul outage the agent may
    have come back empty (a dev agent, a server that lost its data) while the
    cache still holds everything: `recheck_all()` makes the next load of each
    entry read Consul again and write the cached entry back if it is missing.
    """

    def __init__(self, kv: ConsulKV, prefix: str) -> None:
        self._kv = kv
        self._prefix = prefix
        self._indexes: dict[Key, int] = {}
        self._cache: dict[Key, ObjectState | None] = {}
        self._recheck: set[Key] = set()
        self._lock = threading.Lock()

    def key(self, key: Key) -> str:
        kind, name = key
        return f"{self._prefix}/state/{_COLLECTIONS[kind]}/{name}"

    def recheck_all(self) -> list[Key]:
        """Have every cached entry checked against Consul on its next load; the keys."""
        with self._lock:
            self._recheck.update(self._cache)
            return sorted(self._recheck)

    def load(self, key: Key) -> ObjectState | None:
        with self._lock:
            recheck = key in self._recheck
            if key in self._cache and not recheck:
                return self._cache[key]
            cached = self._cache.get(key)
        entry = self._kv.get(self.key(key))
        if entry is None and recheck and cached is not None:
            entry = self._write_back(key, cached)
        state: ObjectState | None = None
        if entry is not None and entry.value:
            try:
                state = ObjectState.from_json(entry.value)
            except ValueError as error:
                logger.warning(
                    "%s: ignoring unreadable stored state (%s)",
                    self.key(key),
                    error,
                    extra=about(*key),
                )
        with self._lock:
            self._indexes[key] = entry.modify_index if entry is not None else 0
            self._cache[key] = state
            self._recheck.discard(key)
        return state

    def _write_back(self, key: Key, state: ObjectState) -> KVEntry | None:
        """Consul lost the entry: write ours again. CAS 0 writes only where the key is
        still absent, so an entry someone else wrote meanwhile wins; either way
        the entry read afterwards is the one in Consul."""
        if self._kv.put(self.key(key), state.to_json(), cas=0):
            logger.info(
                "%s: stored state was lost by Consul; written back",
                self.key(key),
                extra=about(*key),
            )
        return self._kv.get(self.key(key))

    def save(self, key: Key, state: ObjectState) -> None:
        raw = state.to_json()
        with self._lock:
            cas = self._indexes.get(key, 0)
        if not self._kv.put(self.key(key), raw, cas=cas):
            # Someone else wrote the key since we read it (another instance, or a
            # leftover). This instance is the only writer it knows of: log, re-read
            # the index and write once more.
            logger.warning(
                "%s: CAS conflict on stored state; re-reading", self.key(key), extra=about(*key)
            )
            entry = self._kv.get(self.key(key))
            cas = entry.modify_index if entry is not None else 0
            if not self._kv.put(self.key(key), raw, cas=cas):
                raise RuntimeError(f"{self.key(key)}: stored state changed concurrently")
        entry = self._kv.get(self.key(key))
        with self._lock:
            self._indexes[key] = entry.modify_index if entry is not None else 0
            self._cache[key] = state
            self._recheck.discard(key)

    def delete(self, key: Key) -> None:
        self._kv.delete(self.key(key))
        with self._lock:
            self._indexes[key] = 0
            self._cache[key] = None
            self._recheck.discard(key)

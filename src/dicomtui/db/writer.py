"""The one DB writer thread: handlers put, it batches once a second and saves.

TinyDB is not thread-safe and rewrites whole files, so every DB write in the engine goes
through here: one thread, one batch per kind per tick, one explicit save per touched
file. Sinks must take a batch all or nothing (in memory); disk errors belong in the
save, which is retried on its own so no item is handed over twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger("dicomtui.db")
Sink = Callable[[list], None]
Save = Callable[[], None]


class DBWriter:
    """Queues items from any thread; a daemon thread hands batches to sinks and saves."""

    def __init__(self, *, interval: float = 1.0, max_pending: int = 1_000_000) -> None:
        self.interval, self.max_pending = interval, max_pending
        self._sinks: dict[str, tuple[Sink, Save | None]] = {}
        self._pending: deque[tuple[str, Any]] = deque()
        self._retry: list[tuple[str, Any]] = []  # refused by a sink, oldest first
        self._dirty: set[str] = set()  # kinds handed over but not saved yet
        self._wake = threading.Event()
        self._progress = threading.Condition()  # guards the two counters below
        self._taken = 0  # items moved out of _pending
        self._settled = 0  # of those, items handed over and saved
        self._write_lock = threading.Lock()  # one tick at a time, whoever runs it
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._logged: set[str] = set()  # errors logged since the last success
        self._stats: dict[str, Any] = {
            "batches": 0,
            "last_error": None,
            "last_write_s": 0.0,
            "dropped": 0,
        }

    def register(self, kind: str, sink: Sink, flush: Save | None = None) -> None:
        """Send items of `kind` to `sink`, then save with `flush`; call before start()."""
        self._sinks[kind] = (sink, flush)

    def put(self, kind: str, item: Any) -> None:
        """Queue an item from any thread; never blocks (deque.append is atomic)."""
        if kind not in self._sinks:
            raise KeyError(f"no DB sink registered for {kind!r}")
        self._pending.append((kind, item))

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="dicomtui-db-writer", daemon=True
        )
        self._thread.start()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until everything put before this call is handed over and saved.

        False if that did not happen within `timeout` (a sink or save keeps failing).
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("flush() from a sink would wait for itself")
        if self._thread is None or not self._thread.is_alive():
            self._tick()
            return self._clean()
        with self._progress:
            target = self._taken + len(self._pending)
        self._wake.set()
        with self._progress:
            return self._progress.wait_for(lambda: self._settled >= target, timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """Write and save what is pending, then end the thread; False if some is left."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                LOG.error(
                    "DB writer did not finish within %.0f s; unsaved records may be lost",
                    timeout,
                )
                return False
        self._tick()  # items put after the thread's last tick
        if not self._clean():
            LOG.error(
                "DB writer stopped with %d records not written (%s)",
                len(self._retry) + len(self._pending),
                self._stats["last_error"],
            )
        return self._clean()

    def stats(self) -> dict:
        """Pending items, batches handed to sinks, last error or None, last write time."""
        return {
            **self._stats,
            "pending": len(self._pending) + len(self._retry),
            "unsaved": sorted(self._dirty),
        }

    # -- the thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._tick()
        self._tick()

    def _tick(self) -> None:
        """Take everything pending (after what a sink refused before) and write it."""
        with self._write_lock:
            batch = self._take()
            try:
                if batch or self._dirty:
                    self._retry = self._write(batch)
            except Exception:  # a bug here must neither end the thread nor lose items
                LOG.exception("DB writer: unexpected error")
                self._retry = batch
            with self._progress:
                if not self._retry and not self._dirty:
                    self._settled = self._taken
                self._progress.notify_all()

    def _clean(self) -> bool:
        return not self._retry and not self._dirty and not self._pending

    def _take(self) -> list[tuple[str, Any]]:
        with self._progress:  # flush() reads _taken and len(_pending) together
            n = len(self._pending)
            batch = self._retry + [self._pending.popleft() for _ in range(n)]
            self._taken += n
        self._retry = []
        return self._bounded(batch)

    def _bounded(self, batch: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """Drop the oldest items beyond max_pending (a sink failing for a long time)."""
        excess = len(batch) - self.max_pending
        if excess <= 0:
            return batch
        self._stats["dropped"] += excess
        LOG.error(
            "DB writer dropped %d records, the oldest: more than %d were waiting "
            "(last error: %s)",
            excess,
            self.max_pending,
            self._stats["last_error"],
        )
        return batch[excess:]

    def _write(self, batch: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """Hand each kind its batch, then save each kind touched; returns refused ones."""
        started = time.perf_counter()
        refused: list[tuple[str, Any]] = []
        for kind, items in _grouped(batch).items():
            if self._call(kind, self._sinks[kind][0], items):
                self._dirty.add(kind)
                self._stats["batches"] += 1
            else:
                refused.extend((kind, item) for item in items)
        for kind in sorted(self._dirty):
            save = self._sinks[kind][1]
            if save is None or self._call(kind, save):
                self._dirty.discard(kind)
        self._stats["last_write_s"] = time.perf_counter() - started
        if not refused and not self._dirty:
            self._recovered()
        return refused

    def _call(self, kind: str, fn: Callable, *args) -> bool:
        """Run a sink or save; on failure (disk full, permissions) note it and say so."""
        try:
            fn(*args)
        except Exception as exc:
            self._note_error(
                f"writing {kind} records failed: {exc}; keeping them and retrying"
            )
            return False
        return True

    def _note_error(self, message: str) -> None:
        """Log each distinct error once until writes succeed again."""
        self._stats["last_error"] = message
        if message not in self._logged:
            self._logged.add(message)
            LOG.error(message)

    def _recovered(self) -> None:
        if self._logged:
            LOG.warning("DB writes recovered; everything queued is saved")
        self._logged.clear()
        self._stats["last_error"] = None


def _grouped(batch: list[tuple[str, Any]]) -> dict[str, list]:
    """Items by kind, each in the order put."""
    groups: dict[str, list] = {}
    for kind, item in batch:
        groups.setdefault(kind, []).append(item)
    return groups

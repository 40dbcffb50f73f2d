"""The one DB writer thread: handlers put, it batches once a second and saves.

TinyDB is not thread-safe and rewrites whole files, so every DB write in the engine goes
through here: one thread, one batch per kind per tick, one explicit save per file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable

LOG = logging.getLogger("dicomtui.db")


class DBWriter:
    """Queues items from any thread; a daemon thread hands batches to sinks."""

    def __init__(self, *, interval: float = 1.0, max_pending: int = 1_000_000) -> None:
        self.interval, self.max_pending = interval, max_pending
        self._sinks: dict[str, tuple[Callable[[list], None], Callable[[], None] | None]] = {}
        self._pending: deque[tuple[str, Any]] = deque()
        self._retry: list[tuple[str, Any]] = []
        self._dirty: set[str] = set()
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._put_count = 0
        self._done_count = 0
        self._stop = False
        self._thread: threading.Thread | None = None
        self._stats = {"batches": 0, "last_error": None, "last_write_s": 0.0, "dropped": 0}
        self._last_logged_error: str | None = None

    def register(self, kind: str, sink: Callable[[list], None],
                 flush: Callable[[], None] | None = None) -> None:
        self._sinks[kind] = (sink, flush)

    def put(self, kind: str, item: Any) -> None:
        """Never blocks; deque.append is atomic."""
        self._pending.append((kind, item))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dicomtui-db-writer",
                                        daemon=True)
        self._thread.start()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until everything put before this call is written and saved."""
        if self._thread is None or not self._thread.is_alive():
            self._drain()
            return not self._retry and not self._dirty
        with self._cond:
            target = self._put_count + len(self._pending)
            self._wake.set()
            return self._cond.wait_for(self._caught_up(target), timeout)

    def _caught_up(self, target: int) -> Callable[[], bool]:
        return lambda: (self._done_count >= target and not self._retry
                        and not self._dirty) or self._stop

    def stop(self, timeout: float = 10.0) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._drain()

    def stats(self) -> dict:
        return {**self._stats, "pending": len(self._pending) + len(self._retry),
                "unsaved": sorted(self._dirty)}

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        """Take everything pending (after any batch kept for retry) and write it."""
        batch = self._retry
        with self._cond:  # flush() reads both counts under this lock
            while self._pending:
                batch.append(self._pending.popleft())
                self._put_count += 1
        self._retry = self._write(batch) if batch or self._dirty else []
        self._bound_retry()
        with self._cond:
            if not self._retry and not self._dirty:
                self._done_count = self._put_count
            self._cond.notify_all()

    def _write(self, batch: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """Hand each kind its batch, then save each touched file; returns unsent items.

        A sink that fails keeps its items for the next tick; a save that fails marks the
        kind dirty and only the save is retried, so nothing is appended twice.
        """
        started = time.perf_counter()
        groups: dict[str, list] = {}
        for kind, item in batch:
            groups.setdefault(kind, []).append(item)
        failed: list[tuple[str, Any]] = []
        for kind, items in groups.items():
            if self._call(kind, self._sinks[kind][0], items):
                self._dirty.add(kind)
            else:
                failed.extend((kind, item) for item in items)
        for kind in list(self._dirty):
            flush = self._sinks[kind][1]
            if flush is None or self._call(kind, flush):
                self._dirty.discard(kind)
        self._stats["batches"] += 1
        self._stats["last_write_s"] = time.perf_counter() - started
        if not failed and not self._dirty and self._last_logged_error:
            LOG.warning("DB writes recovered after: %s", self._last_logged_error)
            self._stats["last_error"] = self._last_logged_error = None
        return failed

    def _call(self, kind: str, fn: Callable, *args) -> bool:
        try:
            fn(*args)
        except Exception as exc:  # disk full, permissions: keep it and retry
            self._note_error(kind, exc)
            return False
        return True

    def _note_error(self, kind: str, exc: Exception) -> None:
        message = f"writing {kind} records failed: {exc}; will retry"
        self._stats["last_error"] = message
        if message != self._last_logged_error:
            LOG.error(message)
            self._last_logged_error = message

    def _bound_retry(self) -> None:
        excess = len(self._retry) - self.max_pending
        if excess > 0:
            del self._retry[:excess]
            self._stats["dropped"] += excess
            LOG.error("DB writer dropped %d oldest records (over %d pending)", excess,
                      self.max_pending)

"""The write-ahead journal: every acknowledged instance is on disk here before its answer.

A store appends one JSON line (its transaction record, what the index and study
completion need, and the map's originals when anonymizing) and waits for an fsync that
concurrent stores share (group commit). The caller then applies the line to the
components in memory and says so; the DB writer saves them on its tick. A checkpoint
starts a new segment, waits until every line of the old ones is applied, has the writer
save, and deletes the old segments. At start, segments an unclean stop left behind are
replayed; each consumer applies a line at most once (see ARCHITECTURE.md, "Durability").
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from dicomtui.db.storage import fsync_dir

LOG = logging.getLogger("dicomtui.journal")
_SEGMENT = re.compile(r"(\d{6,})\.jsonl")
MAX_LINES = 5_000  # a segment this long is checkpointed without waiting for the timer


class JournalError(OSError):
    """A line could not be made durable: the store must not be acknowledged."""


@dataclass(frozen=True)
class Ticket:
    """A durable line, until the caller says it is applied."""

    segment: int
    jid: str


def _sync_folders(folders: set[Path]) -> None:
    """The renames of a group's stores: each folder once (concurrent stores of one series
    share it); a folder removed since (a cleanup) has nothing left to sync."""
    for folder in folders:
        try:
            fsync_dir(folder)
        except FileNotFoundError:
            pass


class Journal:
    """Owns the segment files, their fd and the checkpoint thread; any thread may write."""

    def __init__(self, folder: Path, save: Callable[[], bool], interval: float = 2.0):
        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._save, self._interval = save, interval
        self._cond = threading.Condition()
        self._boot = secrets.token_hex(4)  # makes line ids unique across starts
        self._written = self._synced = 0
        self._syncing = False
        self._folders: set[Path] = set()  # of lines written since the last sync began
        self._unapplied: Counter[int] = Counter()  # segment -> lines not yet applied
        self._lines = 0  # in the current segment
        self.leftover = self._segments()  # from before this start: to replay
        self._segment = self._first = (self.leftover[-1] if self.leftover else 0) + 1
        self._fd = self._create(self._segment)
        self._checkpointing = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- writing (association threads) ----------------------------------------------
    def write(self, entry: dict, folder: Path | None = None) -> Ticket:
        """Append `entry` (its "jid" set here) and return once it is on disk, with
        `folder` (where the entry's file was just renamed) synced before the line."""
        with self._cond:
            if folder is not None:
                self._folders.add(folder)
            self._written += 1
            seq = self._written
            entry["jid"] = f"{self._boot}-{seq}"
            try:
                os.write(self._fd, orjson.dumps(entry) + b"\n")
            except OSError as exc:
                raise JournalError(exc.errno, f"journal write failed: {exc}") from None
            ticket = Ticket(self._segment, entry["jid"])
            self._unapplied[self._segment] += 1
            self._lines += 1
            if self._lines >= MAX_LINES:
                self._cond.notify_all()  # the checkpoint thread may cut now
        try:
            self._sync(seq)
        except BaseException:
            self.applied(ticket)
            raise
        return ticket

    def _sync(self, seq: int) -> None:
        """Group commit: one thread fsyncs for every line written so far; the others
        wait for it."""
        with self._cond:
            while self._synced < seq:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing, target, fd = True, self._written, self._fd
                folders, self._folders = self._folders, set()
                self._cond.release()
                done = False
                try:
                    _sync_folders(folders)
                    os.fdatasync(fd)
                    done = True
                except OSError as exc:
                    raise JournalError(exc.errno, f"journal fsync failed: {exc}") from None
                finally:
                    self._cond.acquire()
                    self._syncing = False
                    if not done:  # the next leader tries these again
                        self._folders |= folders
                    self._cond.notify_all()
                self._synced = max(self._synced, target)

    def applied(self, ticket: Ticket) -> None:
        """The line's effects are in the components (memory): a checkpoint may save."""
        with self._cond:
            self._unapplied[ticket.segment] -= 1
            if self._unapplied[ticket.segment] <= 0:
                del self._unapplied[ticket.segment]
                self._cond.notify_all()

    # -- checkpoints ------------------------------------------------------------------
    def checkpoint(self, timeout: float = 10.0) -> bool:
        """Cut a segment, save what its lines changed, and delete it; False if the
        lines were not all applied in time or the save failed (it is kept)."""
        with self._checkpointing:
            with self._cond:
                if self._lines == 0 and not self._cut_segments(self._segment - 1):
                    return True
                cut = self._rotate()
                ready = self._cond.wait_for(
                    lambda: not any(s <= cut for s in self._unapplied), timeout
                )
            if not ready or not self._save():
                LOG.error(
                    "journal checkpoint postponed: %s",
                    "lines not applied in time" if not ready else "save failed",
                )
                return False
            self._delete(self._cut_segments(cut))
            return True

    def _cut_segments(self, cut: int) -> list[int]:
        """This run's segments up to `cut` (left-over ones go only by replayed())."""
        return [s for s in self._segments() if self._first <= s <= cut]

    def _rotate(self) -> int:
        """Start a new segment (caller holds the condition); the number of the last old
        one. Lines already written are made durable on the old fd first."""
        self._cond.wait_for(lambda: not self._syncing)
        os.fsync(self._fd)
        os.close(self._fd)
        self._synced = self._written
        self._cond.notify_all()
        cut, self._segment, self._lines = self._segment, self._segment + 1, 0
        self._fd = self._create(self._segment)
        return cut

    # -- the checkpoint thread -----------------------------------------------------------
    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name="dicomtui-journal", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                self._cond.wait_for(
                    lambda: self._lines >= MAX_LINES or self._stopping.is_set(),
                    self._interval,
                )
            if not self._stopping.is_set():
                self.checkpoint()

    def close(self) -> bool:
        """Stop the thread, checkpoint what is left, close the segment."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        done = self.checkpoint()
        with self._cond:
            os.close(self._fd)
            self._fd = -1
        if done:
            self._delete([self._segment])  # empty: nothing was written after the cut
        return done

    # -- replay at start ------------------------------------------------------------------
    def replay(self) -> Iterator[dict]:
        """The lines of the segments left by an unclean stop, oldest first."""
        for segment in self.leftover:
            yield from _lines(self._path(segment))

    def replayed(self) -> None:
        """What replay() gave is applied and saved: its segments go."""
        self._delete(self.leftover)
        self.leftover = []

    # -- files ---------------------------------------------------------------------------
    def _segments(self) -> list[int]:
        found = (_SEGMENT.fullmatch(p.name) for p in self.folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def _path(self, segment: int) -> Path:
        return self.folder / f"{segment:06d}.jsonl"

    def _create(self, segment: int) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(self._path(segment), flags, 0o600)
        fsync_dir(self.folder)  # the segment exists before a line in it is promised
        return fd

    def _delete(self, segments) -> None:
        for segment in list(segments):
            self._path(segment).unlink(missing_ok=True)
        fsync_dir(self.folder)


def _lines(path: Path) -> Iterator[dict]:
    """A segment's entries; a line torn by the crash (the last) is skipped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    for n, line in enumerate(raw.splitlines(), 1):
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            LOG.warning("journal %s line %d is torn or damaged: skipped", path.name, n)
            continue
        if isinstance(entry, dict):
            yield entry

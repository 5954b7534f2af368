"""The gateway's store-and-forward buffer: encoded bus messages kept in order in SQLite (WAL mode).

Bounded in bytes and in batches, with an overflow policy. Synchronous and thread-safe; it knows
nothing of the bus or of asyncio.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from compute.errors import PlantPulseError

log = logging.getLogger(__name__)

MEMORY = ":memory:"
_SCHEMA_VERSION = 1
_UNREADABLE = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a seq names one batch for good
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    size_bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0);
"""


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class OverflowPolicy(enum.StrEnum):
    """What a full buffer gives up: its oldest batch, or the batch that does not fit."""

    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class DiskBufferError(PlantPulseError):
    """The buffer's file cannot be opened, read or written."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Buffered:
    """One buffered bus message; seq orders the buffer and names the message for remove()."""

    seq: int
    key: bytes
    value: bytes


class DiskBuffer:
    """A bounded FIFO of (key, value) messages that survives restarts and crashes.

    Every append and remove is one SQLite transaction with synchronous=FULL, so a crash at any
    point leaves the buffer as it was after the last completed call. One process at a time: the
    file is locked exclusively while open. Use it as a context manager; the methods may be called
    from any thread, one at a time.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_bytes: int = 1 << 30,
        max_batches: int | None = None,
        overflow: OverflowPolicy = OverflowPolicy.DROP_OLDEST,
    ) -> None:
        if max_bytes < 1 or (max_batches is not None and max_batches < 1):
            raise ValueError("the buffer's bounds must be positive")
        self.path = path if path == MEMORY else Path(path)
        self.max_bytes = max_bytes
        self.max_batches = max_batches
        self.overflow = overflow
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._depth_batches = 0
        self._depth_bytes = 0
        self._dropped_total = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> DiskBuffer:
        self.open()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        with self._lock:
            if self._db is not None:
                return
            try:
                db = self._connect()
            except sqlite3.Error as e:
                code = getattr(e, "sqlite_errorcode", 0) & 0xFF  # the primary result code
                if code not in _UNREADABLE or self.path == MEMORY:
                    raise DiskBufferError(f"cannot open the buffer {self.path}: {e}") from e
                self._set_aside(e)
                try:
                    db = self._connect()
                except sqlite3.Error as e2:
                    raise DiskBufferError(f"cannot open the buffer {self.path}: {e2}") from e2
            self._db = db
            count, size, dropped = db.execute(
                "SELECT count(*), coalesce(sum(size_bytes), 0),"
                " (SELECT value FROM counters WHERE name = 'dropped') FROM batches"
            ).fetchone()
            self._depth_batches, self._depth_bytes, self._dropped_total = count, size, dropped
        if count:
            log.info("buffer %s holds %d batches (%d bytes) to flush", self.path, count, size)

    def _connect(self) -> sqlite3.Connection:
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
        try:
            # EXCLUSIVE: a second gateway on the same file fails at once instead of interleaving.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes effect on a new file
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a committed batch survives a power cut
            db.execute("PRAGMA journal_size_limit=16777216")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise DiskBufferError(
                    f"buffer {self.path} has schema version {version}, "
                    f"this gateway knows {_SCHEMA_VERSION}"
                )
            with _transaction(db):
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self, error: sqlite3.Error) -> None:
        """Keep an unreadable file for inspection under another name and start afresh."""
        assert isinstance(self.path, Path)
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.time_ns()}")
        log.error("buffer %s is unreadable (%s); moved to %s", self.path, error, aside)
        for suffix in ("", "-wal", "-shm"):
            src = self.path.with_name(self.path.name + suffix)
            if src.exists():
                src.rename(aside.with_name(aside.name + suffix))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise DiskBufferError("the buffer is closed; use it as a context manager")
        return self._db

    # -- state -------------------------------------------------------------------------------

    @property
    def depth_batches(self) -> int:
        return self._depth_batches

    @property
    def depth_bytes(self) -> int:
        """Bytes of buffered keys and values; the file itself is somewhat larger."""
        return self._depth_bytes

    @property
    def dropped_total(self) -> int:
        """Batches given up to overflow over the buffer's whole life, across restarts."""
        return self._dropped_total

    # -- operations --------------------------------------------------------------------------

    def append(self, key: bytes, value: bytes) -> int:
        """Add a message at the end; return how many batches overflow dropped (0 when it fit)."""
        size_bytes = len(key) + len(value)
        with self._lock:
            db = self._conn()
            full = self._over_bounds(size_bytes)
            keep_new = size_bytes <= self.max_bytes and (
                not full or self.overflow is OverflowPolicy.DROP_OLDEST
            )
            dropped, freed_bytes = (0, 0) if not full else (1, 0)
            try:
                with _transaction(db):
                    if keep_new:
                        if full:
                            dropped, freed_bytes = self._drop_oldest(db, size_bytes)
                        db.execute(
                            "INSERT INTO batches (key, value, size_bytes) VALUES (?, ?, ?)",
                            (key, value, size_bytes),
                        )
                    if dropped:
                        db.execute(
                            "UPDATE counters SET value = value + ? WHERE name = 'dropped'",
                            (dropped,),
                        )
            except sqlite3.Error as e:
                raise DiskBufferError(f"cannot write to the buffer {self.path}: {e}") from e
            if keep_new:
                self._depth_batches += 1 - dropped
                self._depth_bytes += size_bytes - freed_bytes
            self._dropped_total += dropped
            return dropped

    def _over_bounds(self, size_bytes: int) -> bool:
        too_many = self.max_batches is not None and self._depth_batches + 1 > self.max_batches
        return too_many or self._depth_bytes + size_bytes > self.max_bytes

    def _drop_oldest(self, db: sqlite3.Connection, size_bytes: int) -> tuple[int, int]:
        """Delete the oldest batches until one more of size_bytes fits; (batches, bytes) freed."""
        need_batches = 0 if self.max_batches is None else self._depth_batches + 1 - self.max_batches
        need_bytes = self._depth_bytes + size_bytes - self.max_bytes
        dropped = freed_bytes = 0
        last_seq = None
        for seq, n_bytes in db.execute("SELECT seq, size_bytes FROM batches ORDER BY seq"):
            if dropped >= need_batches and freed_bytes >= need_bytes:
                break
            dropped += 1
            freed_bytes += n_bytes
            last_seq = seq
        if last_seq is not None:
            db.execute("DELETE FROM batches WHERE seq <= ?", (last_seq,))
        return dropped, freed_bytes

    def peek(self, limit: int) -> list[Buffered]:
        """The oldest `limit` messages, oldest first; they stay until remove()."""
        with self._lock:
            db = self._conn()
            try:
                rows = db.execute(
                    "SELECT seq, key, value FROM batches ORDER BY seq LIMIT ?", (limit,)
                ).fetchall()
            except sqlite3.Error as e:
                raise DiskBufferError(f"cannot read the buffer {self.path}: {e}") from e
        return [Buffered(seq=s, key=bytes(k), value=bytes(v)) for s, k, v in rows]

    def remove(self, seqs: Iterable[int]) -> int:
        """Forget these messages (they were delivered); return how many were still there."""
        wanted = [(s,) for s in seqs]
        if not wanted:
            return 0
        with self._lock:
            db = self._conn()
            try:
                with _transaction(db):
                    db.execute("CREATE TEMP TABLE IF NOT EXISTS gone (seq INTEGER PRIMARY KEY)")
                    db.execute("DELETE FROM gone")
                    db.executemany("INSERT OR IGNORE INTO gone (seq) VALUES (?)", wanted)
                    removed, freed = db.execute(
                        "SELECT count(*), coalesce(sum(size_bytes), 0) FROM batches"
                        " WHERE seq IN (SELECT seq FROM gone)"
                    ).fetchone()
                    db.execute("DELETE FROM batches WHERE seq IN (SELECT seq FROM gone)")
                if removed and self._depth_batches == removed:
                    db.execute("PRAGMA incremental_vacuum")  # drained: give the space back
            except sqlite3.Error as e:
                raise DiskBufferError(f"cannot remove from the buffer {self.path}: {e}") from e
            self._depth_batches -= removed
            self._depth_bytes -= freed
            return int(removed)

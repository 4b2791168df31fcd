"""The embedded event log: one SQLite file beside the store (`<store>/events.sqlite`).

WAL mode lets the server append while `lookalike metrics` or `training-set` read; each append is
one IMMEDIATE transaction, so writers in several processes (the server, the click simulator)
queue on SQLite's lock for up to `timeout` seconds instead of failing. The event key is the
primary key: `INSERT OR IGNORE` makes a retried batch a no-op and counts it as duplicates.
`synchronous=NORMAL`: in WAL mode a commit then survives the process crashing, and only a power
cut can lose the last few (an fsync per request would cost more than the request itself).
"""

import sqlite3
import threading
from contextlib import closing
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from lookalike.interactions.events import EVENT, AppendResult, Event, RecordedEvent, parse_timestamp, record, timestamp

EVENTS_FILENAME = "events.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    key TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    type TEXT NOT NULL,
    query_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (received_at);
"""


class SqliteEventLog:
    """Safe to share between threads (one connection behind a lock) and between processes (WAL)."""

    def __init__(self, path: str | Path, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=timeout)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def append(self, events: Sequence[Event], received_at: datetime | None = None) -> AppendResult:
        records = record(events, received_at)
        rows = [
            (
                item.key,
                timestamp(item.received_at),
                item.event.type,
                item.event.query_id,
                item.event.session_id,
                item.event.model_dump_json(),
            )
            for item in records
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
                stored = self._db.total_changes - before
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return AppendResult(stored=stored, duplicates=len(events) - stored)

    def events(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[RecordedEvent]:
        conditions, parameters = [], []
        if since is not None:
            conditions.append("received_at >= ?")
            parameters.append(timestamp(since))
        if until is not None:
            conditions.append("received_at < ?")
            parameters.append(timestamp(until))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        # A connection of its own: a long read neither holds the writers' lock nor loads the whole log.
        with closing(sqlite3.connect(self.path, timeout=self.timeout)) as db:
            query = f"SELECT key, received_at, body FROM events {where} ORDER BY received_at, rowid"
            rows = db.execute(query, parameters)
            for key, received_at, body in rows:
                yield RecordedEvent(key=key, received_at=parse_timestamp(received_at), event=EVENT.validate_json(body))

    def close(self) -> None:
        with self._lock:
            self._db.close()

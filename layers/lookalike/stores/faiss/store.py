"""The embedded vector store: a FAISS index plus a SQLite sidecar, in one folder.

The folder's files and the crash-safe commit are `files`' business; this instance's uncommitted
writes, replayed over another writer's commit, are `oplog`'s. Here: loading a generation, writing
the next one's rows, and search.

HNSW cannot remove vectors, so replaced and deleted vectors become tombstones, excluded inside
the search by an IDSelector, until they pass COMPACT_FRACTION of the index and a commit
rebuilds it from the stored vectors. Exact (Flat) indexes remove vectors directly.

Region vectors: an image owns its whole-image vector and up to MAX_REGIONS more, each with its
own FAISS id mapped back to the image. Search asks FAISS for k * (1 + MAX_REGIONS) vectors when
the store holds any region, enough for k distinct images, and keeps each image's best score.
"""

import errno
import logging
import sqlite3
import threading
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from lookalike import knn
from lookalike.errors import InvalidParameterError, LookalikeError
from lookalike.knn import AUTO, KnnMethod, resolve_method
from lookalike.stores.base import (
    MAX_REGIONS,
    Hit,
    StoredImage,
    StoreUnavailableError,
    check_ids,
    unit_rows,
    upsert_batch,
)
from lookalike.stores.faiss import files
from lookalike.stores.faiss.oplog import ImageRecord, OperationLog, StoreState, new_index

# Compaction rebuilds an HNSW index once tombstones are more than this fraction of its vectors:
# below it the dead vectors cost a little memory and a little search time; above it the graph
# spends a noticeable part of ef_search walking past them.
COMPACT_FRACTION = 0.2
LOAD_ATTEMPTS = 20
# Searches of fewer queries than this run on one OpenMP thread: for one query (what the HTTP API
# and `python -m lab evaluate` send) FAISS's threads only add wake-ups and spinning, which on 2 cores
# cost more than the scan and slow onnxruntime beside them (`python -m lab bench search_latency`, 10k gallery,
# idle machine: whole search p50 24 -> 15 ms, p99 60 -> 17 ms).
PARALLEL_QUERIES = 16
# A commit the disk refuses (full, read-only, I/O error) is tried again after each of these pauses,
# then given up with StoreUnavailableError: a moment of pressure (a log rotated, a snapshot being
# deleted) passes, a full disk does not, and a request should not wait long to hear so.
WRITE_RETRY_DELAYS = (0.1, 0.5, 2.0)
# What the OS and SQLite say when the disk, not the data, refuses a write.
WRITE_FAULT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
WRITE_FAULT_MESSAGES = (
    "database or disk is full",
    "readonly database",
    "disk i/o error",
    "unable to open database file",
    *(os.strerror(number).lower() for number in WRITE_FAULT_ERRNOS),
)

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY, faiss_id INTEGER NOT NULL UNIQUE, content_hash TEXT NOT NULL, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tags (
    image_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (image_id, name));
CREATE TABLE IF NOT EXISTS blocked (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS tombstones (faiss_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS regions (faiss_id INTEGER PRIMARY KEY, image_id TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS regions_by_image ON regions (image_id);
"""


class StoreCorruptError(LookalikeError):
    """The store's files are damaged or disagree in a way no crash of ours can produce (edited,
    truncated or lost by hand, a failing disk): nothing can be served from it until it is rebuilt."""

    status = 503


def damaged(path: Path, what: str) -> StoreCorruptError:
    return StoreCorruptError(
        f"the store at {path} is damaged ({what}): remove it and rebuild it with `lookalike index DIR --store {path}`"
    )


class FaissStore:
    """A VectorStore in directory `path` (created if missing).

    `method`: "auto" (exact below knn.AUTO_EXACT_LIMIT vectors, HNSW above), "flat", "hnsw" or a
    KnnMethod; None keeps the store's own (auto for a new store). A different method than the
    store's is recorded and built at the next `persist`. `model_version`, when given, is checked
    as `check_model_version` does. Safe to share between threads.
    """

    def __init__(
        self,
        path: str | Path,
        dim: int | None = None,
        method: str | KnnMethod | None = None,
        model_version: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db, self.read_only = _open_database(self.path / files.META_FILENAME)
            self._log = OperationLog(self._load(), self.path)
        except sqlite3.DatabaseError as error:
            raise damaged(self.path, f"{files.META_FILENAME}: {error}") from error
        if not self.read_only:
            self._remove_orphans()
        if dim is not None:
            self._log.check_dim(dim)
            if self._state.dim is None:
                self._record_op(("dim", dim))
        if method is not None:
            self.set_method(method)
        if model_version is not None:
            self.check_model_version(model_version)

    # -- the VectorStore interface ------------------------------------------------------------

    @property
    def dim(self) -> int | None:
        return self._state.dim

    @property
    def model_version(self) -> str | None:
        return self._state.model_version

    @property
    def method(self) -> str | KnnMethod:
        """What was asked for: "auto" or a KnnMethod."""
        return self._state.method

    @property
    def active_method(self) -> KnnMethod:
        """The method the current index was built with."""
        with self._lock:
            return self._state.active or resolve_method(self._state.method, len(self._state.by_faiss_id))

    @property
    def generation(self) -> int:
        return self._state.generation

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        content_hashes: Sequence[str],
        tags: Sequence[Mapping[str, str]] | None = None,
        regions: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        batch = upsert_batch(ids, vectors, content_hashes, tags, regions)
        self._log.check_dim(batch.vectors.shape[1])
        self._record_op(("upsert", batch.ids, batch.vectors, batch.content_hashes, batch.tags, batch.regions))

    def delete(self, ids: Sequence[str]) -> None:
        self._record_op(("delete", check_ids(ids)))

    def get(self, ids: Sequence[str]) -> list[StoredImage | None]:
        with self._lock:
            state = self._state
            found = [state.records.get(image_id) for image_id in ids]
            live = [record.faiss_id for record in found if record is not None]
            vectors = state.index.reconstruct_batch(np.asarray(live, dtype=np.int64)) if live else None
            images: list[StoredImage | None] = []
            row = 0
            for image_id, record in zip(ids, found):
                if record is None:
                    images.append(None)
                    continue
                images.append(StoredImage(image_id, vectors[row], record.content_hash, dict(record.tags)))
                row += 1
            return images

    def search(self, queries: np.ndarray, k: int, tags: Mapping[str, str] | None = None) -> list[list[Hit]]:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidParameterError(f"k must be a positive integer, got {k!r}")
        count = len(np.atleast_2d(queries))
        with self._lock, _openmp_threads(1 if count < PARALLEL_QUERIES else None):
            state = self._state
            if state.dim is None:
                return [[] for _ in range(count)]
            queries = self._unit_rows(queries, "queries")
            images, allowed = self._allowed(tags) if tags else (len(state.records), None)
            k = min(int(k), images)
            if k == 0:
                return [[] for _ in queries]
            # Each image owns at most 1 + MAX_REGIONS vectors, so this many vectors hold k images.
            fetch = k
            if len(state.by_faiss_id) > len(state.records):
                fetch = min(k * (1 + MAX_REGIONS), len(allowed) if allowed is not None else len(state.by_faiss_id))
            active = self.active_method
            if active.name == "flat":
                selector = self._selector(allowed)
                params = faiss.SearchParameters(sel=selector) if selector is not None else None
                scores, faiss_ids = state.index.search(queries, fetch, params=params)
            elif allowed is not None and len(allowed) < knn.AUTO_EXACT_LIMIT:
                # A graph walk through a small filtered set is slow and misses members; an exact
                # scan of that set costs what exact search of a gallery its size does.
                scores, faiss_ids = self._exact_hnsw(queries, fetch, allowed)
            else:
                selector = self._selector(allowed)
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(active.ef_search, fetch))
                scores, faiss_ids = state.index.search(queries, fetch, params=params)
            hits = [self._best_per_image(row_scores, row_ids, k) for row_scores, row_ids in zip(scores, faiss_ids)]
            short = [row for row, row_hits in enumerate(hits) if len(row_hits) < k]
            if short:
                # The walk can miss part of a filtered set or of a gallery crowded by tombstones;
                # an exact scan returns all min(k, matching).
                scores, faiss_ids = self._exact_hnsw(queries[short], fetch, allowed)
                for row, row_scores, row_ids in zip(short, scores, faiss_ids):
                    hits[row] = self._best_per_image(row_scores, row_ids, k)
            return hits

    def count(self) -> int:
        return len(self._state.records)

    def content_hashes(self) -> dict[str, str]:
        with self._lock:
            return {image_id: record.content_hash for image_id, record in self._state.records.items()}

    def ids_with_hash(self, content_hash: str) -> list[str]:
        with self._lock:
            return sorted(self._state.by_hash.get(content_hash, ()))

    def block(self, ids: Sequence[str]) -> None:
        self._record_op(("block", check_ids(ids)))

    def unblock(self, ids: Sequence[str]) -> None:
        self._record_op(("unblock", check_ids(ids)))

    def blocked(self) -> set[str]:
        with self._lock:
            return set(self._state.blocked)

    def check_model_version(self, model_version: str) -> None:
        with self._lock:
            if self._state.model_version != model_version:
                self._record_op(("model_version", model_version))

    def set_method(self, method: str | KnnMethod) -> None:
        """Ask for another method; the next `persist` rebuilds the index if it changes."""
        method = method if method == AUTO else KnnMethod.parse(method)
        if isinstance(method, KnnMethod) and method.needs_training():
            raise InvalidParameterError(
                f"FaissStore builds flat and hnsw indexes; {method.faiss_factory()} needs training"
            )
        with self._lock:
            if method != self._state.method:
                self._record_op(("method", method))

    def refresh(self) -> bool:
        with self._lock:
            if self._read_generation() == self._state.generation:
                return False
            self._reload()
            return True

    def persist(self) -> None:
        """Commit this instance's writes. A write the disk refuses is retried after each of
        WRITE_RETRY_DELAYS, then StoreUnavailableError: the writes stay pending (the next `persist`
        tries them again) and the committed store is as it was."""
        for delay in (*WRITE_RETRY_DELAYS, None):
            try:
                self._commit()
                return
            except (OSError, sqlite3.OperationalError, RuntimeError) as error:
                fault = _write_fault(error)
                if fault is None:
                    raise
                if delay is None:
                    raise StoreUnavailableError(
                        f"cannot write the store at {self.path}: {fault}; nothing was changed, "
                        f"and the same write can succeed once the disk takes writes again"
                    ) from error
                logger.warning("cannot write the store at %s (%s): trying again in %.1f s", self.path, fault, delay)
                time.sleep(delay)

    def _commit(self) -> None:
        with self._lock:
            if not self._log.operations and not self._needs_rebuild():
                return
            with files.writer_lock(self.path):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if self._read_generation() != self._state.generation:
                        self._reload(in_transaction=True)
                    rebuilt = self._write_generation()
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # a COMMIT that failed may have ended it already
                        self._db.execute("ROLLBACK")
                    self._state.generation = -1  # memory may hold half a replay: reload next time
                    raise
                if rebuilt is not None:
                    self._state.index, self._state.active = rebuilt
                    self._state.tombstones.clear()
                self._log.clear()
                files.remove_orphans(self.path, self._read_index_generation())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "FaissStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- this instance's state and writes -------------------------------------------------------

    @property
    def _state(self) -> StoreState:
        return self._log.state

    def _record_op(self, operation: tuple) -> None:
        with self._lock:
            self._log.record(operation)

    # -- search helpers --------------------------------------------------------------------------

    def _allowed(self, tags: Mapping[str, str]) -> tuple[int, np.ndarray]:
        """How many images carry all the tags, and the FAISS ids of all their vectors."""
        state = self._state
        matching: set[str] | None = None
        for pair in tags.items():
            ids = state.by_tag.get(pair, set())
            matching = set(ids) if matching is None else matching & ids
        matching = matching or set()
        faiss_ids = [faiss_id for i in matching for faiss_id in state.records[i].faiss_ids]
        return len(matching), np.asarray(faiss_ids, dtype=np.int64)

    def _best_per_image(self, scores: np.ndarray, faiss_ids: np.ndarray, k: int) -> list[Hit]:
        """The first k distinct images of a best-first row of vectors: each at its best score."""
        hits: list[Hit] = []
        seen: set[str] = set()
        for score, faiss_id in zip(scores.tolist(), faiss_ids.tolist()):
            if faiss_id < 0:
                break
            if not -1.001 <= score <= 1.001:
                # Cosines of unit vectors lie in [-1, 1]: a damaged index file yields anything.
                raise damaged(self.path, f"its index scored a match {score:.3g}, outside a cosine's [-1, 1]")
            image_id = self._state.by_faiss_id[faiss_id]
            if image_id not in seen:
                seen.add(image_id)
                hits.append(Hit(image_id, score))
                if len(hits) == k:
                    break
        return hits

    def _selector(self, allowed: np.ndarray | None) -> faiss.IDSelector | None:
        if allowed is not None:
            return faiss.IDSelectorBatch(allowed)
        if not self._state.tombstones:
            return None
        dead = faiss.IDSelectorBatch(np.fromiter(self._state.tombstones, dtype=np.int64))
        selector = faiss.IDSelectorNot(dead)
        selector.referenced_objects = [dead]
        return selector

    def _exact_hnsw(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact search of the allowed (default: live) vectors in an HNSW index's flat storage.

        HNSW never removes, and FAISS ids are handed out increasing and added in that order (a
        rebuild adds them sorted), so the IDMap's internal -> FAISS id array is sorted.
        """
        state = self._state
        if allowed is None:
            allowed = np.fromiter(state.by_faiss_id, dtype=np.int64, count=len(state.by_faiss_id))
        faiss_ids = faiss.vector_to_array(state.index.id_map)
        positions = np.searchsorted(faiss_ids, allowed)
        storage = faiss.downcast_index(state.index.index).storage
        selector = faiss.IDSelectorBatch(positions.astype(np.int64))
        scores, found = storage.search(queries, k, params=faiss.SearchParameters(sel=selector))
        return scores, np.where(found < 0, -1, faiss_ids[np.maximum(found, 0)])

    # -- validation ------------------------------------------------------------------------------

    def _unit_rows(self, rows: np.ndarray, what: str) -> np.ndarray:
        rows = unit_rows(rows, what)
        self._log.check_dim(rows.shape[1])
        return rows

    # -- loading ---------------------------------------------------------------------------------

    def _read_generation(self) -> int:
        row = self._db.execute("SELECT value FROM settings WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def _reload(self, in_transaction: bool = False) -> None:
        """Load the committed generation and replay this instance's uncommitted operations on it."""
        self._log.rebase(self._load(in_transaction))

    def _load(self, in_transaction: bool = False) -> StoreState:
        for _ in range(LOAD_ATTEMPTS):
            state = self._read_rows(in_transaction)
            if state.index_generation == 0:
                state.index = new_index(state.dim, state.active) if state.dim is not None else None
                return state
            index_file = files.index_path(self.path, state.index_generation)
            try:
                state.index = faiss.read_index(str(index_file))
            except RuntimeError as error:
                # A writer committed a newer generation and removed this one's file after we
                # read the rows: read again. Within our own write transaction that cannot happen.
                if in_transaction or index_file.exists():
                    raise damaged(self.path, f"{index_file.name} cannot be read: {str(error).splitlines()[0]}") from error
                time.sleep(0.01)
                continue
            _check_index(state, index_file, self.path)
            return state
        raise damaged(self.path, "it names an index file that does not exist")

    def _read_rows(self, in_transaction: bool) -> StoreState:
        if not in_transaction:
            self._db.execute("BEGIN")
        try:
            settings = dict(self._db.execute("SELECT key, value FROM settings"))
            state = StoreState(
                generation=int(settings.get("generation", 0)),
                index_generation=int(settings.get("index_generation", 0)),
                dim=int(settings["dim"]) if settings.get("dim") else None,
                model_version=settings.get("model_version"),
                method=_parse_method_setting(settings.get("method", AUTO)),
                next_faiss_id=int(settings.get("next_faiss_id", 0)),
            )
            state.active = KnnMethod.from_json(settings["active"]) if "active" in settings else None
            if state.active is None and state.dim is not None:
                state.active = resolve_method(state.method, 0)
            tags: dict[str, dict[str, str]] = {}
            for image_id, name, value in self._db.execute("SELECT image_id, name, value FROM tags"):
                tags.setdefault(image_id, {})[name] = value
            regions: dict[str, list[int]] = {}
            for image_id, faiss_id in self._db.execute("SELECT image_id, faiss_id FROM regions ORDER BY faiss_id"):
                regions.setdefault(image_id, []).append(faiss_id)
            for image_id, faiss_id, content_hash in self._db.execute("SELECT id, faiss_id, content_hash FROM images"):
                region_ids = tuple(regions.get(image_id, ()))
                state.add_record(image_id, ImageRecord(faiss_id, content_hash, tags.get(image_id, {}), region_ids))
            state.blocked = {row[0] for row in self._db.execute("SELECT id FROM blocked")}
            state.tombstones = {row[0] for row in self._db.execute("SELECT faiss_id FROM tombstones")}
        finally:
            if not in_transaction:
                self._db.execute("COMMIT")
        return state

    # -- committing ------------------------------------------------------------------------------

    def _needs_rebuild(self) -> bool:
        state = self._state
        if state.index is None:
            return False
        target = resolve_method(state.method, len(state.by_faiss_id), state.active)
        too_many_dead = len(state.tombstones) > COMPACT_FRACTION * max(state.index.ntotal, 1)
        return target != state.active or too_many_dead

    def _write_generation(self) -> tuple[faiss.Index, KnnMethod] | None:
        """Inside the write transaction: rows, then the index file, then the generation switch.

        Returns the rebuilt index when this commit rebuilt it (compaction or a method change).
        """
        state = self._state
        db = self._db
        written = self._log.written_images()
        touched, vectors, regions = written.touched, written.vectors, written.regions
        gone = [(image_id,) for image_id in touched if image_id not in state.records]
        db.executemany("DELETE FROM images WHERE id = ?", gone)
        db.executemany("DELETE FROM tags WHERE image_id = ?", [(image_id,) for image_id in touched])
        db.executemany("DELETE FROM regions WHERE image_id = ?", [(image_id,) for image_id in touched])
        present = [image_id for image_id in touched if image_id in state.records]
        db.executemany(
            "INSERT OR REPLACE INTO images (id, faiss_id, content_hash, vector) VALUES (?, ?, ?, ?)",
            (
                (i, state.records[i].faiss_id, state.records[i].content_hash, vectors[i].tobytes())
                for i in present
            ),
        )
        db.executemany(
            "INSERT INTO tags (image_id, name, value) VALUES (?, ?, ?)",
            ((i, name, value) for i in present for name, value in state.records[i].tags.items()),
        )
        db.executemany(
            "INSERT INTO regions (faiss_id, image_id, vector) VALUES (?, ?, ?)",
            (
                (faiss_id, i, row.tobytes())
                for i in present
                for faiss_id, row in zip(state.records[i].region_ids, regions[i])
            ),
        )
        db.execute("DELETE FROM blocked")
        db.executemany("INSERT INTO blocked (id) VALUES (?)", ((image_id,) for image_id in state.blocked))

        rebuilt = None
        index, active = state.index, state.active
        if self._needs_rebuild():
            active = resolve_method(state.method, len(state.by_faiss_id), state.active)
            index = self._rebuild(active)
            rebuilt = (index, active)
        tombstones = () if rebuilt else state.tombstones
        db.execute("DELETE FROM tombstones")
        db.executemany("INSERT INTO tombstones (faiss_id) VALUES (?)", ((f,) for f in tombstones))

        generation = state.generation + 1
        index_generation = state.index_generation
        if index is not None and (rebuilt or touched or index_generation == 0):
            index_generation = generation
            files.install_index(index, files.index_path(self.path, index_generation))
        settings = {
            "generation": generation,
            "index_generation": index_generation,
            "dim": state.dim or "",
            "method": state.method if state.method == AUTO else state.method.to_json(),
            "next_faiss_id": state.next_faiss_id,
        }
        if active is not None:
            settings["active"] = active.to_json()
        if state.model_version is not None:
            settings["model_version"] = state.model_version
        db.executemany(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
            ((key, str(value)) for key, value in settings.items()),
        )
        state.generation = generation
        state.index_generation = index_generation
        return rebuilt

    def _rebuild(self, method: KnnMethod) -> faiss.Index:
        """A fresh index of the live vectors, read back from the rows this transaction wrote."""
        index = new_index(self._state.dim, method)
        rows = self._db.execute(
            "SELECT faiss_id, vector FROM images UNION ALL SELECT faiss_id, vector FROM regions ORDER BY faiss_id"
        ).fetchall()
        if rows:
            ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
            vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32).reshape(len(rows), -1)
            index.add_with_ids(vectors, ids)
        return index

    def _remove_orphans(self) -> None:
        """Delete the index files a crashed writer left, unless a writer is at work right now."""
        with files.writer_lock(self.path, blocking=False) as acquired:
            if acquired:
                files.remove_orphans(self.path, self._read_index_generation())

    def _read_index_generation(self) -> int:
        row = self._db.execute("SELECT value FROM settings WHERE key = 'index_generation'").fetchone()
        return int(row[0]) if row else 0


def _open_database(path: Path) -> tuple[sqlite3.Connection, bool]:
    """The store's database, and whether it could only be opened read-only.

    A read-only folder or database must still serve searches, but WAL wants to create its -wal
    and -shm files beside the database: read-only, SQLite opens it as `mode=ro` where those can
    be read, and as `immutable` (no journal at all: nobody can write to it) where they cannot.
    """
    for uri in (f"file:{path}", f"file:{path}?mode=ro", f"file:{path}?immutable=1"):
        db = None
        try:
            db = _connect(uri)
            if uri.endswith(path.name):
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(SCHEMA)
            else:
                db.execute("SELECT COUNT(*) FROM settings").fetchone()
            return db, uri != f"file:{path}"
        except sqlite3.OperationalError as error:
            if db is not None:
                db.close()
            if _write_fault(error) is None:
                raise
    raise sqlite3.OperationalError(f"unable to open {path}")


def _connect(uri: str) -> sqlite3.Connection:
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=60)


def _check_index(state: StoreState, index_file: Path, store_path: Path) -> None:
    """The cheap guard against a damaged index file: it holds exactly the vectors the rows name.
    (It does not catch bytes changed in place; the score check in search catches the worst.)"""
    expected = len(state.by_faiss_id) + (len(state.tombstones) if state.active and state.active.name != "flat" else 0)
    if state.index.ntotal != expected or (state.dim is not None and state.index.d != state.dim):
        raise damaged(
            store_path, f"{index_file.name} holds {state.index.ntotal} vectors of {state.index.d} dimensions, "
            f"the database {expected} of {state.dim}"
        )


def _write_fault(error: Exception) -> str | None:
    """What refused the write when the disk did (full, read-only, failing); None for anything else."""
    if isinstance(error, OSError):
        return (error.strerror or str(error)) if error.errno in WRITE_FAULT_ERRNOS else None
    message = str(error).lower()
    return next((str(error) for fault in WRITE_FAULT_MESSAGES if fault in message), None)


def _parse_method_setting(value: str) -> str | KnnMethod:
    return AUTO if value == AUTO else KnnMethod.from_json(value)


@contextmanager
def _openmp_threads(threads: int | None) -> Iterator[None]:
    """FAISS's OpenMP thread count for the block (None: unchanged). OpenMP keeps the setting per
    calling thread, so a search in another thread is not affected."""
    if threads is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)

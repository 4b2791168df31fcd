"""The embedded store's files, and the commit protocol that keeps them consistent through a crash.

Layout of the store's folder:
  meta.sqlite        settings (dim, method, model version, generation), the id map (string id <->
                     FAISS int64 id), each image's float32 vector (the source of truth: rebuilds
                     and compaction read it), content hash, tags, the block list and tombstones;
                     `regions` holds each image's extra vectors (suggested fragments), one
                     FAISS id each. SQLite keeps its journal beside it (meta.sqlite-wal, -shm).
  index-<n>.faiss    the FAISS index of index generation n (IDMap2 over Flat or HNSW, inner product).
  lock               flock'ed by a writer for the length of a commit.

Commit protocol (`FaissStore.persist`): under the lock, open a SQLite write transaction, write the
rows, write the new index to a temporary name, fsync, rename to `index-<n+1>.faiss`, fsync the
folder, then switch the generation in SQLite and COMMIT. The COMMIT is the single atomic commit
point: a crash before it leaves the previous generation (its rows and its index file, deleted only
after the COMMIT) intact; files a crashed writer left behind are removed on open.

Other files may share the folder (the gallery record, the event log), so whoever moves or cleans
the folder asks `is_store_file` which files are the store's.
"""

import errno
import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss

META_FILENAME = "meta.sqlite"
LOCK_FILENAME = "lock"
TEMPORARY_SUFFIX = ".tmp"
# Every name the store writes: the database and SQLite's journal files, the lock, and the index
# files of each generation, under their final or their temporary name.
STORE_FILE = re.compile(
    rf"{re.escape(META_FILENAME)}(-wal|-shm|-journal)?"
    rf"|{re.escape(LOCK_FILENAME)}"
    rf"|index-(?P<index_generation>\d+)\.faiss(?P<temporary>{re.escape(TEMPORARY_SUFFIX)})?"
)


def is_store_file(name: str) -> bool:
    """Whether a file of the store's folder, by its name, is one the store writes."""
    return STORE_FILE.fullmatch(name) is not None


def index_path(folder: Path, index_generation: int) -> Path:
    return folder / f"index-{index_generation}.faiss"


def install_index(index: faiss.Index, path: Path) -> None:
    """Write the index under its final name only once its bytes are on disk."""
    temporary = path.with_name(path.name + TEMPORARY_SUFFIX)
    faiss.write_index(index, str(temporary))
    _fsync(temporary)
    os.replace(temporary, path)
    _fsync(path.parent)


@contextmanager
def writer_lock(folder: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold the store's writer lock for the block; without `blocking`, yield False if another holds it."""
    with open(folder / LOCK_FILENAME, "a") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def remove_orphans(folder: Path, index_generation: int) -> None:
    """Delete index files other than the committed generation's (superseded, or left by a crash).

    Call it under the writer lock: a writer between its rename and its COMMIT owns a newer file.
    """
    keep = index_path(folder, index_generation).name
    for entry in folder.iterdir():
        match = STORE_FILE.fullmatch(entry.name)
        if match and match["index_generation"] is not None and entry.name != keep:
            entry.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

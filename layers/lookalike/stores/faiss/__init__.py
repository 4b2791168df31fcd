"""The embedded vector store: FAISS indexes beside a SQLite database, in one folder.

`store` searches and writes generations, `oplog` holds this instance's uncommitted writes, and
`files` owns the folder's files and the crash-safe commit protocol.
"""

from lookalike.stores.faiss.files import is_store_file
from lookalike.stores.faiss.store import FaissStore

__all__ = ["FaissStore", "is_store_file"]

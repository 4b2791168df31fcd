"""Vector stores: the interface and its backends (the embedded FAISS store here)."""

from lookalike.stores.base import Hit, ModelVersionMismatchError, StoredImage, VectorStore

__all__ = ["Hit", "ModelVersionMismatchError", "StoredImage", "VectorStore"]

"""Vector stores: the interface (`base`) and its backends, each a package: `faiss` (embedded) and
`opensearch` (cloud)."""

from lookalike.stores.base import Hit, ModelVersionMismatchError, StoredImage, VectorStore

__all__ = ["Hit", "ModelVersionMismatchError", "StoredImage", "VectorStore"]

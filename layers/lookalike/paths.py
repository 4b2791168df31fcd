"""Where Lookalike keeps its files, overridable by environment variables.

Defaults follow the XDG base-directory convention so that every command, whatever the current
directory, finds the same store and model.
"""

import os
from pathlib import Path

MODEL_FILENAME = "efficientnet-lite0-embedder.onnx"


def _xdg(variable: str, fallback: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / fallback)


def default_store_path() -> Path:
    """`LOOKALIKE_STORE`, else `$XDG_DATA_HOME/lookalike/store` (~/.local/share/lookalike/store)."""
    explicit = os.environ.get("LOOKALIKE_STORE")
    return Path(explicit) if explicit else _xdg("XDG_DATA_HOME", ".local/share") / "lookalike" / "store"


def default_model_path() -> Path:
    """`LOOKALIKE_MODEL`, else `$XDG_CACHE_HOME/lookalike/<MODEL_FILENAME>` (~/.cache/lookalike/...)."""
    explicit = os.environ.get("LOOKALIKE_MODEL")
    return Path(explicit) if explicit else _xdg("XDG_CACHE_HOME", ".cache") / "lookalike" / MODEL_FILENAME

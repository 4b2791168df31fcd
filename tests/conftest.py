"""Shared fixtures: the real model, built once from the pretrained weights when missing."""

from pathlib import Path

import pytest

from lookalike.paths import default_model_path
from lookalike.embedding import Embedder
from model_export.export_onnx import export

# The loopback OpenSearch server's `loopback` fixture, for every test that needs a cluster; the
# data sets' fixtures, which skip a test when a tar is missing.
pytest_plugins = ["tests.support.opensearch_loopback", "tests.support.datasets"]


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The configured model file, built (a few seconds) unless it already holds this version."""
    path = default_model_path()
    export(path)
    return path


@pytest.fixture(scope="session")
def embedder(model_path) -> Embedder:
    return Embedder(model_path, threads=2)

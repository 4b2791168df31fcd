"""The Lookalike deployment as importable Pulumi code (the program itself is infra/__main__.py)."""

from .config import StackConfig, load
from .stack import LookalikeStack, build_stack

__all__ = ["LookalikeStack", "StackConfig", "build_stack", "load"]

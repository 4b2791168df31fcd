"""Lookalike: visual search by image or by a fragment of one.

The core runs the pipeline bytes -> image -> tensor -> vector -> candidates -> ranked results.
It knows nothing of AWS or HTTP: stores and sources are interfaces, and the edges
(`lookalike.http`, `lookalike.cli`, the Lambda handlers) adapt them.
"""

__version__ = "0.1.0"

"""The k-NN method: one small value that names the index for both backends.

Names, parameters and defaults are those of OpenSearch's faiss engine (`hnsw`: m, ef_construction,
ef_search; `ivf`: nlist, nprobes; encoders `flat` and `pq` with m and code_size), so a gallery
moves between the embedded FAISS store and OpenSearch without translating its configuration.
`flat` (exact search) exists only on the FAISS side: OpenSearch's faiss engine has no flat method.
IVF and PQ need OpenSearch's training API and a model id, which the mapping refuses to fake.
"""

import dataclasses
import json
from dataclasses import dataclass
from typing import Literal

from lookalike.errors import InvalidParameterError

# Exact search is the default below this many gallery vectors. Measured on random unit 1280-d
# vectors, 2 cores (`python -m lab bench store_bench`): one exact query scans ~0.2 ms per 1,000
# vectors single-threaded (3.5-5 ms at 20k, 17 ms at 100k), while HNSW (m=16, ef_search=100)
# answers in ~1 ms but takes 13-21 s to build at 20k and loses recall as the gallery grows
# (recall@1 0.92-0.97 at 10k, 0.81-0.83 at 20k, 0.52 at 50k on random vectors, its worst case).
# Below the limit exact search is fast enough and never misses; above it, it keeps growing linearly.
AUTO_EXACT_LIMIT = 20_000
# "auto" goes back to exact search only below this, so a gallery hovering around the limit does
# not rebuild its index on every commit.
AUTO_EXACT_RETURN = AUTO_EXACT_LIMIT * 3 // 4

AUTO = "auto"
METHOD_NAMES = ("flat", "hnsw", "ivf")
ENCODER_NAMES = ("flat", "pq")
OPENSEARCH_FAISS_SPACES = ("innerproduct", "cosinesimil", "l2")


@dataclass(frozen=True)
class KnnMethod:
    """How the gallery is searched; defaults are OpenSearch's faiss defaults."""

    name: Literal["flat", "hnsw", "ivf"] = "flat"
    m: int = 16
    ef_construction: int = 100
    ef_search: int = 100
    nlist: int = 4
    nprobes: int = 1
    encoder: Literal["flat", "pq"] = "flat"
    pq_m: int = 1
    code_size: int = 8

    def __post_init__(self) -> None:
        if self.name not in METHOD_NAMES:
            raise InvalidParameterError(f"k-NN method must be one of {', '.join(METHOD_NAMES)}, got {self.name!r}")
        if self.encoder not in ENCODER_NAMES:
            raise InvalidParameterError(f"encoder must be one of {', '.join(ENCODER_NAMES)}, got {self.encoder!r}")
        _check_range("m", self.m, 2, 100)
        _check_range("ef_construction", self.ef_construction, 2, None)
        _check_range("ef_search", self.ef_search, 1, None)
        _check_range("nlist", self.nlist, 1, None)
        _check_range("nprobes", self.nprobes, 1, self.nlist)
        _check_range("pq_m", self.pq_m, 1, 1024)
        _check_range("code_size", self.code_size, 1, 8)
        if self.name == "flat" and self.encoder != "flat":
            raise InvalidParameterError("the flat method takes no encoder: exact search compares full vectors")
        if self.name == "hnsw" and self.encoder == "pq" and self.code_size != 8:
            raise InvalidParameterError(f"hnsw with the pq encoder needs code_size 8, got {self.code_size}")

    @classmethod
    def parse(cls, value: "str | KnnMethod") -> "KnnMethod":
        """A method name ("flat", "hnsw", "ivf") with default parameters, or a KnnMethod as is."""
        if isinstance(value, KnnMethod):
            return value
        return cls(name=value)

    def faiss_factory(self) -> str:
        """The FAISS index_factory string: "Flat", "HNSW16,Flat", "IVF4,Flat", "IVF4,PQ8x8"."""
        encoding = "Flat" if self.encoder == "flat" else f"PQ{self.pq_m}x{self.code_size}"
        if self.name == "flat":
            return "Flat"
        if self.name == "hnsw":
            return f"HNSW{self.m},{encoding}"
        return f"IVF{self.nlist},{encoding}"

    def opensearch_method(self, space_type: str = "innerproduct") -> dict:
        """The `method` object of a knn_vector mapping on the faiss engine.

        ef_search is not part of it: OpenSearch reads it from the index setting
        (`opensearch_index_settings`). Methods that need training are refused, not mapped to
        something else, because OpenSearch would reject them without a trained model_id.
        """
        if space_type not in OPENSEARCH_FAISS_SPACES:
            raise InvalidParameterError(
                f"space_type must be one of {', '.join(OPENSEARCH_FAISS_SPACES)}, got {space_type!r}"
            )
        if self.name == "flat":
            raise InvalidParameterError(
                "OpenSearch's faiss engine has no flat (exact) method: use hnsw, or exact scoring with script_score"
            )
        if self.needs_training():
            raise InvalidParameterError(
                f"{self.faiss_factory()} needs OpenSearch's training API and a model_id (\"method\" requires "
                "training); only hnsw with the flat encoder maps directly"
            )
        return {
            "name": "hnsw",
            "engine": "faiss",
            "space_type": space_type,
            "parameters": {"m": self.m, "ef_construction": self.ef_construction},
        }

    def opensearch_index_settings(self) -> dict:
        """The index settings that go with `opensearch_method` (ef_search is a dynamic setting there)."""
        return {"index.knn": True, "index.knn.algo_param.ef_search": self.ef_search}

    def needs_training(self) -> bool:
        return self.name == "ivf" or self.encoder == "pq"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "KnnMethod":
        return cls(**json.loads(text))


def resolve_method(method: "str | KnnMethod", count: int, current: KnnMethod | None = None) -> KnnMethod:
    """The method to build for `count` vectors: "auto" is exact below AUTO_EXACT_LIMIT, else HNSW."""
    if method != AUTO:
        return KnnMethod.parse(method)
    exact = KnnMethod(name="flat")
    if current is not None and current.name == "hnsw" and count >= AUTO_EXACT_RETURN:
        return current
    return exact if count < AUTO_EXACT_LIMIT else KnnMethod(name="hnsw")


def _check_range(name: str, value: int, low: int, high: int | None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidParameterError(f"{name} must be an integer {bounds}, got {value!r}")

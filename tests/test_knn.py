"""KnnMethod: one value, the FAISS factory string and OpenSearch's faiss mapping, and what each refuses."""

import faiss
import pytest

from lookalike.errors import InvalidParameterError
from lookalike.knn import AUTO_EXACT_LIMIT, AUTO_EXACT_RETURN, KnnMethod, resolve_method


@pytest.mark.parametrize(
    ("method", "factory"),
    [
        (KnnMethod(), "Flat"),
        (KnnMethod(name="hnsw"), "HNSW16,Flat"),
        (KnnMethod(name="hnsw", m=32), "HNSW32,Flat"),
        (KnnMethod(name="ivf"), "IVF4,Flat"),
        (KnnMethod(name="ivf", encoder="pq", pq_m=8), "IVF4,PQ8x8"),
        (KnnMethod(name="hnsw", encoder="pq", pq_m=4), "HNSW16,PQ4x8"),
    ],
)
def test_faiss_factory_strings_build_the_named_index(method, factory):
    assert method.faiss_factory() == factory
    faiss.index_factory(64, factory, faiss.METRIC_INNER_PRODUCT)  # FAISS accepts what we produce


def test_defaults_are_opensearch_faiss_defaults():
    method = KnnMethod()
    assert (method.name, method.m, method.ef_construction, method.ef_search) == ("flat", 16, 100, 100)
    assert (method.nlist, method.nprobes, method.encoder, method.pq_m, method.code_size) == (4, 1, "flat", 1, 8)


def test_hnsw_maps_to_the_opensearch_faiss_method():
    method = KnnMethod(name="hnsw", m=24, ef_construction=128, ef_search=64)
    assert method.opensearch_method() == {
        "name": "hnsw",
        "engine": "faiss",
        "space_type": "innerproduct",
        "parameters": {"m": 24, "ef_construction": 128},
    }
    assert method.opensearch_method("cosinesimil")["space_type"] == "cosinesimil"
    assert method.opensearch_index_settings() == {"index.knn": True, "index.knn.algo_param.ef_search": 64}


@pytest.mark.parametrize(
    ("method", "message"),
    [
        (KnnMethod(), "no flat"),
        (KnnMethod(name="ivf"), "training"),
        (KnnMethod(name="hnsw", encoder="pq"), "training"),
    ],
)
def test_opensearch_refuses_what_its_faiss_engine_cannot_build_without_training(method, message):
    with pytest.raises(InvalidParameterError, match=message):
        method.opensearch_method()


def test_opensearch_refuses_an_unknown_space():
    with pytest.raises(InvalidParameterError, match="space_type"):
        KnnMethod(name="hnsw").opensearch_method("hamming-ish")


def test_needs_training():
    assert not KnnMethod().needs_training()
    assert not KnnMethod(name="hnsw").needs_training()
    assert KnnMethod(name="ivf").needs_training()
    assert KnnMethod(name="hnsw", encoder="pq").needs_training()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "annoy"}, "method must be one of"),
        ({"encoder": "sq"}, "encoder must be one of"),
        ({"name": "hnsw", "m": 1}, "m must be an integer between 2 and 100"),
        ({"name": "hnsw", "m": 101}, "m must be an integer between 2 and 100"),
        ({"ef_search": 0}, "ef_search must be"),
        ({"ef_construction": 1}, "ef_construction must be"),
        ({"name": "ivf", "nlist": 4, "nprobes": 5}, "nprobes must be an integer between 1 and 4"),
        ({"name": "ivf", "encoder": "pq", "code_size": 9}, "code_size"),
        ({"name": "hnsw", "encoder": "pq", "code_size": 4}, "code_size 8"),
        ({"encoder": "pq"}, "flat method takes no encoder"),
        ({"name": "hnsw", "m": "16"}, "m must be an integer"),
    ],
)
def test_out_of_range_parameters_are_refused_with_the_parameter_named(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        KnnMethod(**kwargs)


def test_json_round_trip():
    method = KnnMethod(name="hnsw", m=8, ef_search=50)
    assert KnnMethod.from_json(method.to_json()) == method


def test_parse_takes_names_and_values():
    assert KnnMethod.parse("hnsw") == KnnMethod(name="hnsw")
    method = KnnMethod(name="hnsw", m=8)
    assert KnnMethod.parse(method) is method


def test_auto_is_exact_below_the_limit_and_hnsw_above():
    assert resolve_method("auto", 0).name == "flat"
    assert resolve_method("auto", AUTO_EXACT_LIMIT - 1).name == "flat"
    assert resolve_method("auto", AUTO_EXACT_LIMIT) == KnnMethod(name="hnsw")
    assert resolve_method("flat", 10 * AUTO_EXACT_LIMIT).name == "flat"


def test_auto_returns_to_exact_only_well_below_the_limit():
    hnsw = KnnMethod(name="hnsw")
    assert resolve_method("auto", AUTO_EXACT_LIMIT - 1, current=hnsw) == hnsw
    assert resolve_method("auto", AUTO_EXACT_RETURN - 1, current=hnsw).name == "flat"

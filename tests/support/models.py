"""ONNX files that are models, but not Lookalike's: what a wrong --model points at."""

from pathlib import Path

import onnx


def write_bare_model(path: Path) -> Path:
    """A valid ONNX model (an identity) without the metadata an embedder needs."""
    tensor = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["pixels"], ["embedding"])],
        "bare",
        [tensor("pixels", onnx.TensorProto.FLOAT, ["n", 3])],
        [tensor("embedding", onnx.TensorProto.FLOAT, ["n", 3])],
    )
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    return path

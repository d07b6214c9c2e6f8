"""ONNX model files for the tests, built with onnx.helper so their scores are known exactly:
score = sigmoid(bias + sum(weight_i * x_i)), with NaN inputs taken as 0, returned as the two-column
``probabilities`` output skl2onnx classifiers have."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def logistic(weights: Sequence[float], bias: float, input_name: str = "x") -> bytes:
    k = len(weights)
    w = numpy_helper.from_array(np.array(weights, dtype=np.float32).reshape(k, 1), "w")
    b = numpy_helper.from_array(np.array([bias], dtype=np.float32), "b")
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
    nodes = [
        helper.make_node("IsNaN", [input_name], ["nan"]),
        helper.make_node("Where", ["nan", "zero", input_name], ["x0"]),
        helper.make_node("MatMul", ["x0", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "logistic",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, k])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[w, b, zero, one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def constant(k: int, score: float) -> bytes:
    """A model of k inputs that always returns this score."""
    return logistic([0.0] * k, math.log(score / (1 - score)))

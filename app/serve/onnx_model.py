"""An ONNX model of the registry in an onnxruntime session: input checks and scoring one vector.

A model takes one float tensor of shape [batch, k], the k input features in the order the registry
lists them (a NULL feature is passed as NaN, a boolean as 0/1). Its score is the positive-class
probability: column 1 of the output named ``probabilities`` (skl2onnx with ``zipmap=False``), else of
the first float tensor output; a one-column or one-dimensional output is the score itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import onnxruntime as ort

_FLOAT_TYPES = ("tensor(float)", "tensor(double)")


class ModelInputError(ValueError):
    """The ONNX model cannot consume the features it is registered with."""


def _session(onnx: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    # One request scores one vector: threads would only contend with the event loop.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(onnx, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a bad file
        raise ModelInputError(f"not a loadable ONNX model: {exc}") from None


def _score_output(session: ort.InferenceSession) -> str:
    outputs = [o for o in session.get_outputs() if o.type in _FLOAT_TYPES]
    if not outputs:
        raise ModelInputError("the model has no float tensor output to read a score from (skl2onnx: zipmap=False)")
    named = [o for o in outputs if o.name == "probabilities"]
    return str((named or outputs)[0].name)


def input_width(session: ort.InferenceSession) -> int:
    """The k of the model's single [batch, k] float input (a clear error for any other input)."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise ModelInputError(f"the model must take one [batch, k] float input; it takes {len(inputs)} ({names})")
    (inp,) = inputs
    if inp.type != "tensor(float)":
        raise ModelInputError(f"the model input {inp.name!r} must be tensor(float), not {inp.type}")
    shape = inp.shape
    if len(shape) != 2 or not isinstance(shape[1], int):
        raise ModelInputError(f"the model input {inp.name!r} must have shape [batch, k] with a fixed k, not {shape}")
    return shape[1]


def check_inputs(onnx: bytes, features: Sequence[str]) -> tuple[ort.InferenceSession, str]:
    """The session and score output of a model that takes exactly these features; refuses any other."""
    session = _session(onnx)
    width = input_width(session)
    output = _score_output(session)
    if width != len(features):
        raise ModelInputError(
            f"the model takes {width} input features but is registered with {len(features)}: {', '.join(features)}"
        )
    return session, output


def _as_float(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    raise TypeError(f"not a model input value: {value!r}")


@dataclass(frozen=True)
class LoadedModel:
    """One model version, ready to score vectors of its feature set."""

    name: str
    version: int
    sha256: str
    feature_set: str
    feature_set_version: int
    features: tuple[str, ...]
    review_at: float | None
    decline_at: float | None
    status: str
    session: ort.InferenceSession
    input_name: str
    output_name: str

    @classmethod
    def load(cls, row: dict[str, Any]) -> LoadedModel:
        features = tuple(row["features"])
        session, output = check_inputs(bytes(row["onnx"]), features)
        return cls(
            name=row["name"],
            version=row["version"],
            sha256=row["sha256"],
            feature_set=row["feature_set"],
            feature_set_version=row["feature_set_version"],
            features=features,
            review_at=row["review_at"],
            decline_at=row["decline_at"],
            status=row["status"],
            session=session,
            input_name=session.get_inputs()[0].name,
            output_name=output,
        )

    def inputs(self, values: dict[str, Any]) -> np.ndarray:
        """The model input for one vector (feature name -> value)."""
        return np.array([[_as_float(values[f]) for f in self.features]], dtype=np.float32)

    def score(self, values: dict[str, Any]) -> float:
        (out,) = self.session.run([self.output_name], {self.input_name: self.inputs(values)})
        arr = np.asarray(out, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] >= 2:
            return float(arr[0, 1])
        return float(arr.reshape(-1)[0])

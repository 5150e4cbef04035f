"""Deterministic synthetic batches, made once in numpy (images NCHW) and fed to both
frameworks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalog import get_workload

# Targets are class labels for classifiers and dense tensors for regressions.
CLASSIFIERS = ("mlp", "cnn", "lstm", "transformer")


@dataclass(frozen=True)
class Batch:
    inputs: np.ndarray
    targets: np.ndarray


def make_batch(name: str, size: str, seed: int, batch_size: int | None = None) -> Batch:
    c = get_workload(name).config(size, batch_size)
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    if name == "linear":
        x = np.arange(1, c["batch"] + 1, dtype=np.float32).reshape(-1, 1)
        return Batch(x, 2 * x)
    if name == "mlp":
        inputs = normal(c["batch"], c["features"])
    elif name == "cnn":
        inputs = normal(c["batch"], c["channels"], c["image"], c["image"])
    elif name in ("lstm", "transformer"):
        width = c["features"] if name == "lstm" else c["d_model"]
        inputs = normal(c["batch"], c["seq"], width)
    elif name == "matmul":
        return Batch(normal(c["m"], c["n"]), normal(c["m"], c["k"]))
    elif name == "conv2d":
        shape = (c["batch"], c["channels"], c["image"], c["image"])
        out_shape = (c["batch"], c["filters"], c["image"], c["image"])
        return Batch(normal(*shape), normal(*out_shape))
    else:
        raise AssertionError(f"no data recipe for workload {name!r}")
    labels = rng.integers(0, c["classes"], size=c["batch"], dtype=np.int64)
    return Batch(inputs, labels)

"""Numeric parity: torch's trained weights copied into the Keras model must give the same
outputs; each framework in its own subprocess (`python -m workloads.parity`)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .catalog import get_workload
from .data import make_batch
from .spec import DEFAULT_SEED, ParityError

# Training steps the torch side takes before exporting its weights.
WARM_STEPS = 3


@dataclass(frozen=True)
class ParityResult:
    name: str
    ok: bool
    max_abs_diff: float
    atol: float
    params: dict  # framework -> trainable parameter count it built
    error: str | None = None


def _export_torch(names, size, seed, directory: Path) -> None:
    import torch

    from .torch_impl import TorchWorkload

    for name in names:
        workload = TorchWorkload(name, size, "train", "eager", seed, device="cpu")
        for _ in range(WARM_STEPS):
            workload.step()
        inputs = make_batch(name, size, seed + 1).inputs
        # Snapshot first: a training-mode forward updates batch-norm statistics.
        weights = workload.weights()
        infer_out = workload.predict(inputs)
        with torch.no_grad():
            train_out = workload.model(torch.from_numpy(inputs)).numpy()
        np.savez(
            directory / f"{name}.npz",
            inputs=inputs,
            infer_outputs=infer_out,
            train_outputs=train_out,
            params=np.int64(workload.params()),
            **{f"w:{k}": v for k, v in weights.items()},
        )


def _compare_tensorflow(names, size, seed, directory: Path) -> list[dict]:
    from .tf_impl import tf

    # Both sides on the CPU: a GPU's TF32 matmuls would measure the device, not the models.
    with tf.device("/CPU:0"):
        return [_compare_one(name, size, seed, directory) for name in names]


def _compare_one(name, size, seed, directory: Path) -> dict:
    from .tf_impl import TensorFlowWorkload, from_tf_layout, to_tf_layout

    saved = np.load(directory / f"{name}.npz")
    state = {k[2:]: saved[k] for k in saved.files if k.startswith("w:")}
    workload = TensorFlowWorkload(name, size, "train", "eager", seed)
    workload.load_torch_weights(state)
    inputs = saved["inputs"]
    infer_out = workload.predict(inputs)
    train_out = from_tf_layout(
        name, np.asarray(workload.model(to_tf_layout(name, inputs), training=True))
    )
    diff = max(
        float(np.max(np.abs(infer_out - saved["infer_outputs"]))),
        float(np.max(np.abs(train_out - saved["train_outputs"]))),
    )
    expected = get_workload(name).params(size)
    params = {"torch": int(saved["params"]), "tensorflow": workload.params()}
    atol = get_workload(name).parity_atol
    error = None
    if not params["torch"] == params["tensorflow"] == expected:
        error = f"parameter counts {params} differ from the formula's {expected}"
    elif not diff <= atol:
        error = f"max abs diff {diff:.3g} exceeds {atol:g}"
    return asdict(ParityResult(name, error is None, diff, atol, params, error))


def _run_side(framework: str, names, size, seed, directory) -> str:
    command = [
        # -P: a `workloads` folder in the user's working directory must not shadow ours
        sys.executable, "-P", "-m", "workloads.parity", framework, str(directory),
        "--size", size, "--seed", str(seed), *names,
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise ParityError(f"{framework} side of the parity check failed: {tail}")
    return done.stdout


def check_parity(names, size: str = "tiny", seed: int = DEFAULT_SEED) -> dict[str, ParityResult]:
    """Run both sides in their own subprocesses; results by workload name."""
    for name in names:
        get_workload(name).config(size)
    with tempfile.TemporaryDirectory(prefix="xprof-parity-") as tmp:
        _run_side("torch", names, size, seed, tmp)
        out = _run_side("tensorflow", names, size, seed, tmp)
    rows = json.loads(out.strip().splitlines()[-1])
    return {row["name"]: ParityResult(**row) for row in rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workloads.parity")
    parser.add_argument("framework", choices=("torch", "tensorflow"))
    parser.add_argument("directory", type=Path)
    parser.add_argument("names", nargs="+")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.framework == "torch":
        _export_torch(args.names, args.size, args.seed, args.directory)
    else:
        results = _compare_tensorflow(args.names, args.size, args.seed, args.directory)
        print(json.dumps(results))


if __name__ == "__main__":
    main()

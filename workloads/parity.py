"""Numeric parity: torch's trained weights copied into the Keras model must give the same
outputs, at fp32 and under each framework's mixed precision; each framework in its own
subprocess (`python -m workloads.parity`)."""

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
from .spec import DEFAULT_DTYPE, DEFAULT_SEED, DTYPES, ParityError, is_missing_kernel

# Training steps the torch side takes before exporting its weights.
WARM_STEPS = 3


@dataclass(frozen=True)
class ParityResult:
    name: str
    ok: bool
    max_abs_diff: float | None  # None where unsupported
    atol: float | None
    params: dict  # framework -> trainable parameter count it built
    error: str | None = None
    dtype: str = DEFAULT_DTYPE
    unsupported: str | None = None  # why this machine cannot run the workload at dtype


def _unsupported(error: Exception) -> str:
    """One line on why a framework could not run a step at a reduced precision here."""
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"


def _export_torch(names, size, seed, directory: Path, dtype: str) -> None:
    from .torch_impl import TorchWorkload

    for name in names:
        workload = TorchWorkload(name, size, "train", "eager", seed, device="cpu", dtype=dtype)
        try:
            for _ in range(WARM_STEPS):
                workload.step()
        except RuntimeError as error:  # e.g. no fp16 LSTM kernel on this CPU
            if dtype == "fp32" or not is_missing_kernel(error):
                raise
            (directory / f"{name}.unsupported").write_text(f"torch: {_unsupported(error)}")
            continue
        inputs = make_batch(name, size, seed + 1).inputs
        # Snapshot first: a training-mode forward updates batch-norm statistics.
        weights = workload.weights()
        infer_out = workload.predict(inputs)
        train_out = workload.predict(inputs, training=True)
        np.savez(
            directory / f"{name}.npz",
            inputs=inputs,
            infer_outputs=infer_out,
            train_outputs=train_out,
            params=np.int64(workload.params()),
            **{f"w:{k}": v for k, v in weights.items()},
        )


def _compare_tensorflow(names, size, seed, directory: Path, dtype: str) -> list[dict]:
    from .tf_impl import tf

    # Both sides on the CPU: a GPU's TF32 matmuls would measure the device, not the models.
    with tf.device("/CPU:0"):
        return [_compare_one(name, size, seed, directory, dtype) for name in names]


def _compare_one(name, size, seed, directory: Path, dtype: str) -> dict:
    from .tf_impl import TensorFlowWorkload, tf

    spec = get_workload(name)
    unsupported = directory / f"{name}.unsupported"
    if unsupported.exists():
        why = unsupported.read_text()
        return asdict(ParityResult(name, True, None, None, {}, None, dtype, why))
    saved = np.load(directory / f"{name}.npz")
    state = {k[2:]: saved[k] for k in saved.files if k.startswith("w:")}
    workload = TensorFlowWorkload(name, size, "train", "eager", seed, dtype=dtype)
    workload.load_torch_weights(state)
    inputs = saved["inputs"]
    try:
        infer_out = workload.predict(inputs)
        train_out = workload.predict(inputs, training=True)
    except tf.errors.InvalidArgumentError as error:  # no kernel for the dtype here
        if dtype == "fp32" or not is_missing_kernel(error):
            raise
        why = f"tensorflow: {_unsupported(error)}"
        return asdict(ParityResult(name, True, None, None, {}, None, dtype, why))
    diff = max(
        float(np.max(np.abs(infer_out - saved["infer_outputs"]))),
        float(np.max(np.abs(train_out - saved["train_outputs"]))),
    )
    scale = float(max(np.max(np.abs(saved["infer_outputs"])), np.max(np.abs(saved["train_outputs"]))))
    expected = spec.params(size)
    params = {"torch": int(saved["params"]), "tensorflow": workload.params()}
    atol = spec.parity_tolerance(dtype, scale)
    error = None
    if not params["torch"] == params["tensorflow"] == expected:
        error = f"parameter counts {params} differ from the formula's {expected}"
    elif not diff <= atol:
        error = f"max abs diff {diff:.3g} exceeds {atol:g}"
    return asdict(ParityResult(name, error is None, diff, atol, params, error, dtype))


def _run_side(framework: str, names, size, seed, directory, dtype) -> str:
    command = [
        # -P: a `workloads` folder in the user's working directory must not shadow ours
        sys.executable, "-P", "-m", "workloads.parity", framework, str(directory),
        "--size", size, "--seed", str(seed), "--dtype", dtype, *names,
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise ParityError(f"{framework} side of the parity check failed: {tail}")
    return done.stdout


def check_parity(names, size: str = "tiny", seed: int = DEFAULT_SEED,
                 dtype: str = DEFAULT_DTYPE) -> dict[str, ParityResult]:
    """Run both sides in their own subprocesses; results by workload name. A workload a
    framework cannot run at `dtype` on this CPU is ok with its reason as `unsupported`."""
    for name in names:
        get_workload(name).config(size)
        get_workload(name).parity_tolerance(dtype, 1.0)
    with tempfile.TemporaryDirectory(prefix="xprof-parity-") as tmp:
        _run_side("torch", names, size, seed, tmp, dtype)
        out = _run_side("tensorflow", names, size, seed, tmp, dtype)
    rows = json.loads(out.strip().splitlines()[-1])
    return {row["name"]: ParityResult(**row) for row in rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workloads.parity")
    parser.add_argument("framework", choices=("torch", "tensorflow"))
    parser.add_argument("directory", type=Path)
    parser.add_argument("names", nargs="+")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--dtype", choices=DTYPES, default=DEFAULT_DTYPE)
    args = parser.parse_args(argv)
    if args.framework == "torch":
        _export_torch(args.names, args.size, args.seed, args.directory, args.dtype)
    else:
        results = _compare_tensorflow(args.names, args.size, args.seed, args.directory, args.dtype)
        print(json.dumps(results))


if __name__ == "__main__":
    main()

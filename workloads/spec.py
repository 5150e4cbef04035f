"""What a workload is, independent of any framework: sizes and the analytic parameter
and FLOP counts; imports neither torch nor TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

FRAMEWORKS = ("torch", "tensorflow")
SIZES = ("tiny", "small", "large")
MODES = ("train", "infer")
EXECUTIONS = ("eager", "graph", "compiled")
# Arithmetic precisions: fp32, or mixed precision as each framework's users run it
# (weights kept in fp32, matmuls and convolutions in bf16 or fp16).
DTYPES = ("fp32", "bf16", "fp16")
DEFAULT_DTYPE = "fp32"

# Each framework's usual way of running a model, used when --exec is not given.
DEFAULT_EXECUTION = {"torch": "eager", "tensorflow": "graph"}

# The seed every workload's synthetic data and weights start from, in both frameworks.
DEFAULT_SEED = 1234


# Mixed precision rounds each matmul's inputs to 8 (bf16) or 11 (fp16) significant bits,
# and the two frameworks round in different places (torch autocast keeps a batch norm in
# the low precision, Keras computes it in fp32). Parity there allows 8 units of that
# rounding (2^-8, 2^-11) times the outputs' largest magnitude (at least 1); measured
# differences reach 1.5 units (docs/workloads.md).
REDUCED_PRECISION_TOLERANCE = {"bf16": 8 * 2**-8, "fp16": 8 * 2**-11}


# How the frameworks say they have no kernel for a precision on a device (oneDNN, torch's
# dispatcher, TensorFlow's kernel registry); any other error at bf16 or fp16 is a bug.
NO_KERNEL_SIGNS = ("could not create a primitive descriptor", "not implemented for", "no registered",
                   "no kernel", "unsupported dtype", "not supported for")


def is_missing_kernel(error: BaseException) -> bool:
    """Whether `error` says a framework has no kernel for the precision here."""
    text = str(error).lower()
    return any(sign in text for sign in NO_KERNEL_SIGNS)


class WorkloadError(ValueError):
    """A workload, size, mode or execution style that does not exist."""


class ParityError(RuntimeError):
    """A framework subprocess of the parity check failed."""


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    description: str
    sizes: Mapping[str, Mapping[str, int]]
    count_params: Callable[[Mapping[str, int]], int]
    # Multiply-accumulates of one forward pass over one batch.
    forward_macs: Callable[[Mapping[str, int]], int]
    # MACs of the layers that read the batch itself: their input gradient is never
    # computed (the data needs none), so backward skips that half of their work.
    data_layer_macs: Callable[[Mapping[str, int]], int]
    # Forward-output tolerance of the numeric parity check at fp32 (max abs diff); at
    # bf16 and fp16 see REDUCED_PRECISION_TOLERANCE.
    parity_atol: float = 1e-5
    notes: str = ""
    tags: tuple[str, ...] = field(default=())
    # The config key that is the batch: how many examples (rows of a matmul) one step takes.
    batch_key: str = "batch"

    def parity_tolerance(self, dtype: str, scale: float) -> float:
        """The largest max-abs difference the parity check allows at `dtype`, for outputs
        whose largest magnitude is `scale`."""
        check_choice("dtype", dtype, DTYPES)
        if dtype == "fp32":
            return self.parity_atol
        return REDUCED_PRECISION_TOLERANCE[dtype] * max(1.0, scale)

    def config(self, size: str, batch_size: int | None = None) -> dict[str, int]:
        """A size's config; with `batch_size`, that many examples a step instead of the
        size's own (the model's shapes stay the size's)."""
        check_choice("size", size, SIZES)
        config = dict(self.sizes[size])
        if batch_size is not None:
            if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise WorkloadError(f"batch size must be a whole number of at least 1, not {batch_size!r}")
            config[self.batch_key] = batch_size
        return config

    def batch(self, size: str) -> int:
        """The batch size of a size's own config."""
        return self.config(size)[self.batch_key]

    def params(self, size: str) -> int:
        return self.count_params(self.config(size))

    def flops_per_step(self, size: str, mode: str, batch_size: int | None = None) -> int:
        """Analytic FLOPs of one step: 2 per MAC forward. Training adds the
        backward pass (a weight gradient for every layer, an input gradient for all
        but the layers reading the data) and one multiply-add per parameter for
        the SGD update. Element-wise work (activations, norms, pooling) is not counted."""
        check_choice("mode", mode, MODES)
        config = self.config(size, batch_size)
        forward_macs = self.forward_macs(config)
        if mode == "infer":
            return 2 * forward_macs
        backward_macs = 2 * forward_macs - self.data_layer_macs(config)
        return 2 * (forward_macs + backward_macs) + 2 * self.count_params(config)


def check_choice(what: str, value: str, valid) -> str:
    if value not in valid:
        raise WorkloadError(
            f"unknown {what} {value!r}; valid choices: {', '.join(valid)}"
        )
    return value


def resolve_execution(framework: str, execution: str | None) -> str:
    check_choice("framework", framework, FRAMEWORKS)
    if execution is None:
        return DEFAULT_EXECUTION[framework]
    return check_choice("execution style", execution, EXECUTIONS)

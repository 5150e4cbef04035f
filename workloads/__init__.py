"""The canonical workloads, each written once per framework, and their parity facts.
Importing it is cheap: torch and TensorFlow load only in torch_impl and tf_impl."""

from .catalog import WORKLOADS, get_workload
from .spec import (
    DEFAULT_EXECUTION,
    DEFAULT_DTYPE,
    DEFAULT_SEED,
    DTYPES,
    EXECUTIONS,
    FRAMEWORKS,
    MODES,
    SIZES,
    WorkloadError,
    WorkloadSpec,
)

__all__ = [
    "WORKLOADS",
    "get_workload",
    "DEFAULT_EXECUTION",
    "DEFAULT_DTYPE",
    "DEFAULT_SEED",
    "DTYPES",
    "EXECUTIONS",
    "FRAMEWORKS",
    "MODES",
    "SIZES",
    "WorkloadError",
    "WorkloadSpec",
]

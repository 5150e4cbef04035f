"""The canonical workloads, each written once per framework, and their parity facts.

Importing this package is cheap: torch and tensorflow load only in
`workloads.torch_impl` and `workloads.tf_impl`, in the process that runs them.
"""

from .catalog import WORKLOADS, get_workload
from .spec import (
    DEFAULT_EXECUTION,
    DEFAULT_SEED,
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
    "DEFAULT_SEED",
    "EXECUTIONS",
    "FRAMEWORKS",
    "MODES",
    "SIZES",
    "WorkloadError",
    "WorkloadSpec",
]

"""The vendors' datasheet peaks of the GPUs xprof knows, matched from the device name and
properties that runs, traces and NVML record."""

from __future__ import annotations

import re
from dataclasses import dataclass

TERA = 1e12


@dataclass(frozen=True)
class Datasheet:
    name: str
    # dense (no sparsity) FLOP/s by precision, and HBM bandwidth in bytes/s
    flops: dict[str, float]
    bytes_per_s: float
    source: str


# Dense peaks from each vendor's datasheet; fp32 is the non-tensor-core figure on NVIDIA
# (torch and TensorFlow do not use TF32 for fp32 matmuls unless told to) and the matrix-core
# figure on AMD (rocBLAS's fp32 GEMMs use the matrix cores).
DATASHEETS = {
    "V100": Datasheet("NVIDIA V100 SXM2", {"fp32": 15.7 * TERA, "fp16": 125 * TERA}, 900e9,
                      "NVIDIA Tesla V100 datasheet (2020), SXM2 column"),
    "A100-40GB": Datasheet("NVIDIA A100 SXM4 40GB", {"fp32": 19.5 * TERA, "bf16": 312 * TERA, "fp16": 312 * TERA},
                           1555e9, "NVIDIA A100 Tensor Core GPU datasheet (2021), A100 40GB SXM column"),
    "A100-80GB": Datasheet("NVIDIA A100 SXM4 80GB", {"fp32": 19.5 * TERA, "bf16": 312 * TERA, "fp16": 312 * TERA},
                           2039e9, "NVIDIA A100 Tensor Core GPU datasheet (2021), A100 80GB SXM column"),
    "H100": Datasheet("NVIDIA H100 SXM5", {"fp32": 67 * TERA, "bf16": 989.5 * TERA, "fp16": 989.5 * TERA},
                      3.35e12, "NVIDIA H100 Tensor Core GPU datasheet (2023), H100 SXM column, dense"),
    "H100-PCIE": Datasheet("NVIDIA H100 PCIe", {"fp32": 51 * TERA, "bf16": 756 * TERA, "fp16": 756 * TERA},
                           2.0e12, "NVIDIA H100 Tensor Core GPU datasheet (2023), H100 PCIe column, dense"),
    "H200": Datasheet("NVIDIA H200 SXM", {"fp32": 67 * TERA, "bf16": 989.5 * TERA, "fp16": 989.5 * TERA},
                      4.8e12, "NVIDIA H200 Tensor Core GPU datasheet (2024), H200 SXM column, dense"),
    "B200": Datasheet("NVIDIA B200", {"fp32": 75 * TERA, "bf16": 2.25e15, "fp16": 2.25e15}, 8e12,
                      "NVIDIA HGX B200 datasheet (2024): 8 GPUs' figures / 8, dense"),
    "L4": Datasheet("NVIDIA L4", {"fp32": 30.3 * TERA, "bf16": 121 * TERA, "fp16": 121 * TERA}, 300e9,
                    "NVIDIA L4 Tensor Core GPU datasheet (2023), dense"),
    "MI250": Datasheet("AMD Instinct MI250 (one GCD)", {"fp32": 90.5 * TERA / 2, "bf16": 362.1 * TERA / 2,
                                                        "fp16": 362.1 * TERA / 2}, 3.2768e12 / 2,
                       "AMD Instinct MI250 datasheet: OAM figures (2 GCDs) / 2, as each GCD is a device"),
    "MI300X": Datasheet("AMD Instinct MI300X", {"fp32": 163.4 * TERA, "bf16": 1307.4 * TERA, "fp16": 1307.4 * TERA},
                        5.3e12, "AMD Instinct MI300X datasheet (2023), dense matrix figures"),
}


def match_datasheet(name: str | None, facts: dict | None = None) -> Datasheet | None:
    """The datasheet of a GPU from the name a run or trace records and the properties
    beside it (Kineto's deviceProperties, XSpace plane stats, NVML); None if unknown."""
    facts = facts or {}
    text = (name or "").upper()
    memory = (facts.get("total_memory_bytes") or facts.get("memory_total_bytes") or facts.get("memory_size")
              or facts.get("totalGlobalMem") or 0)
    if "A100" in text:
        return DATASHEETS["A100-80GB" if memory > 60 * 2**30 or "80GB" in text else "A100-40GB"]
    for key in ("H200", "B200", "V100", "L4"):
        if re.search(rf"\b{key}\b", text):
            return DATASHEETS[key]
    if "H100" in text:
        return DATASHEETS["H100-PCIE" if "PCIE" in text else "H100"]
    if "MI300X" in text:
        return DATASHEETS["MI300X"]
    if "MI250" in text:
        return DATASHEETS["MI250"]
    vendor = str(facts.get("device_vendor") or text)
    cores = facts.get("core_count") or facts.get("numSms")
    # XSpace device planes give a vendor and a core count, not a model: NVIDIA's SM counts
    # (and memory, where two models share one) tell the models apart
    if "NVIDIA" in vendor.upper():
        by_sms = {80: "V100", 58: "L4", 114: "H100-PCIE", 148: "B200",
                  108: "A100-80GB" if memory > 60 * 2**30 else "A100-40GB",
                  132: "H200" if memory > 100 * 2**30 else "H100"}
        if cores in by_sms:
            return DATASHEETS[by_sms[cores]]
    # ROCm names its devices "AMD Radeon Graphics"; the compute units tell them apart
    if "AMD" in vendor.upper():
        if cores == 304:
            return DATASHEETS["MI300X"]
        if cores == 104 and facts.get("computeMajor", 9) == 9:
            return DATASHEETS["MI250"]
    return None

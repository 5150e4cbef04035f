"""Which of the comparison articles' claims hold on this machine: each claim's test, from
analysis/claims.toml, against the store's latest runs, judged by diff's statistics."""

from __future__ import annotations

import json
import math
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from analysis.code_lines import code_lines
from analysis.diff import stability_notes, step_time_difference
from analysis.figures import run_figures
from analysis.runs import run_hint
from analysis.stats import DEFAULT_CONFIDENCE, DEFAULT_MIN_EFFECT, Interval, is_significant, welch_log_ratio
from profiler.collect.settings import RunRequest
from profiler.errors import UserError
from analysis.peaks import run_peak
from profiler.store import Store
from workloads import DEFAULT_DTYPE, EXECUTIONS, FRAMEWORKS, MODES, WORKLOADS, get_workload

CLAIMS_FILE = Path(__file__).with_name("claims.toml")
KINDS = ("step_time", "efficiency", "utilization", "devices", "code_lines")
HOLDS, REVERSED, NO_DIFFERENCE, NOT_MEASURED = "holds", "reversed", "no significant difference", "not measured here"
VERDICTS = (HOLDS, REVERSED, NO_DIFFERENCE, NOT_MEASURED)
# What `claims --run` profiles with unless told: 3 repeats a run, the fewest that give an
# interval worth reading; more repeats narrow it.
DEFAULT_REPEATS = 3
# NVML reports utilization in whole percent.
UTILIZATION_RESOLUTION = 1.0
RATIO_MEANS = ("The claimed side's advantage, greater than 1 where the claim's direction holds: "
               "the other side's step time over the claimed side's (so also the claimed side's "
               "FLOP/s over the other's), the claimed side's GPU utilization over the other's, "
               "the other side's lines of code over the claimed side's")


class ClaimsError(UserError, ValueError):
    """A claims file that cannot be read or says something xprof cannot test."""


@dataclass(frozen=True)
class Side:
    framework: str
    execution: str

    def __str__(self) -> str:
        return f"{self.framework} {self.execution}"


@dataclass(frozen=True)
class Comparison:
    mode: str
    claimed: Side
    other: Side
    batch_size: int | None = None

    def __str__(self) -> str:
        batch = f" at batch size {self.batch_size}" if self.batch_size else ""
        return f"{self.claimed} vs {self.other}, {self.mode}{batch}"


@dataclass(frozen=True)
class Claim:
    id: int
    claim: str
    source: str
    test: str
    kind: str
    comparisons: tuple[Comparison, ...] = ()

    def devices(self, machine: Machine) -> list[str]:
        """The devices the claim is checked on: each kind present for efficiency, else
        the machine's chosen one."""
        return machine.devices() if self.kind == "efficiency" else [machine.device]


def load_claims(path: Path = CLAIMS_FILE) -> list[Claim]:
    """The claims of a claims file, each checked for what xprof can test."""
    try:
        tables = tomllib.loads(Path(path).read_text()).get("claim", [])
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ClaimsError(f"cannot read claims file {path}: {error}") from None
    claims = [_claim(table, path) for table in tables]
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ClaimsError(f"claims file {path}: claim ids repeat: {ids}")
    return claims


def _claim(table: dict, path) -> Claim:
    where = f"claims file {path}: claim {table.get('id', '?')}"
    missing = [k for k in ("id", "claim", "source", "test", "kind") if k not in table]
    if missing:
        raise ClaimsError(f"{where}: no {', '.join(missing)}")
    if table["kind"] not in KINDS:
        raise ClaimsError(f"{where}: kind {table['kind']!r} is not one of {', '.join(KINDS)}")
    comparisons = []
    for item in table.get("comparison", []):
        try:
            sides = [Side(item[k]["framework"], item[k]["execution"]) for k in ("claimed", "other")]
            comparison = Comparison(item["mode"], *sides, item.get("batch_size"))
        except (KeyError, TypeError) as error:
            raise ClaimsError(f"{where}: a comparison lacks {error}") from None
        bad = ([s.framework for s in sides if s.framework not in FRAMEWORKS]
               + [s.execution for s in sides if s.execution not in EXECUTIONS]
               + ([comparison.mode] if comparison.mode not in MODES else [])
               + ([comparison.batch_size] if comparison.batch_size is not None
                  and (not isinstance(comparison.batch_size, int) or comparison.batch_size < 1) else []))
        if bad:
            raise ClaimsError(f"{where}: a comparison names what xprof does not run: {bad}")
        comparisons.append(comparison)
    if table["kind"] not in ("devices",) and not comparisons:
        raise ClaimsError(f"{where}: a {table['kind']} claim needs a [[claim.comparison]]")
    return Claim(int(table["id"]), table["claim"], table["source"], table["test"], table["kind"],
                 tuple(comparisons))


@dataclass(frozen=True)
class Machine:
    """What a verdict depends on beyond the store: the device the claims are checked on
    (a run's 'cpu' or 'gpu:N'), the GPUs the frameworks see here, and NVML's state."""

    device: str = "cpu"
    gpus: int = 0
    nvml: str | None = None  # why NVML is unavailable; None when it is there

    def devices(self) -> list[str]:
        """The device of each kind present: the CPU, and the chosen GPU where there is one."""
        return ["cpu"] + ([self.device] if self.device != "cpu" else [])


def check_claims(store: Store, size: str, machine: Machine, workloads: list[str] | None = None,
                 claims: list[Claim] | None = None, min_effect=DEFAULT_MIN_EFFECT,
                 confidence=DEFAULT_CONFIDENCE) -> dict:
    """Every claim's verdict per workload at `size`, from the latest ok fp32 runs on the
    machine's device, and the environment those runs ran in."""
    workloads = workloads or list(WORKLOADS)
    checker = _Checker(store, size, machine, workloads, min_effect, confidence)
    results = [checker.check(claim) for claim in (claims if claims is not None else load_claims())]
    return {"environment": checker.environment(), "size": size, "dtype": DEFAULT_DTYPE,
            "device": machine.device, "min_effect": min_effect, "confidence": confidence,
            "ratio": RATIO_MEANS,
            "method": ("Each verdict as `report`'s: Welch's interval on the logs of per-repeat "
                       "median step times at the confidence given (not adjusted across "
                       "workloads); holds or reversed only where it excludes 1 and the effect "
                       "exceeds --min-effect"),
            "claims": results}


def needed_requests(store: Store, size: str, machine: Machine, workloads: list[str] | None = None,
                    claims: list[Claim] | None = None, **run) -> list[RunRequest]:
    """The runs the claims' measured tests need and the store lacks, one request each
    (`run`: steps, warmup, repeats)."""
    requests = {}
    for claim in claims if claims is not None else load_claims():
        if claim.kind not in ("step_time", "efficiency", "utilization"):
            continue
        if claim.kind == "utilization" and (machine.device == "cpu" or machine.nvml):
            continue
        for comparison in claim.comparisons:
            for side in (comparison.claimed, comparison.other):
                for workload in workloads or list(WORKLOADS):
                    for device in claim.devices(machine):
                        key = (workload, side, comparison.mode, comparison.batch_size, device)
                        if key in requests or _latest(store, workload, side, comparison, size, device):
                            continue
                        requests[key] = RunRequest(workload, side.framework, comparison.mode, side.execution,
                                                   size, device=device, dtype=DEFAULT_DTYPE,
                                                   batch_size=comparison.batch_size, **run)
    return list(requests.values())


def _latest(store, workload, side: Side, comparison: Comparison, size, device) -> dict | None:
    return store.latest_ok_run(workload, side.framework, comparison.mode, side.execution, size, DEFAULT_DTYPE,
                               device, comparison.batch_size)


class _Checker:
    def __init__(self, store, size, machine, workloads, min_effect, confidence):
        self.store, self.size, self.machine, self.workloads = store, size, machine, workloads
        self.min_effect, self.confidence = min_effect, confidence
        self.used_runs: dict[str, dict] = {}
        self._figures = {}

    def check(self, claim: Claim) -> dict:
        result = {"id": claim.id, "claim": claim.claim, "source": claim.source, "test": claim.test,
                  "kind": claim.kind, "not_measured": self._unmeasurable(claim), "verdicts": []}
        if result["not_measured"] is None:
            for comparison in claim.comparisons:
                for device in claim.devices(self.machine):
                    for workload in self.workloads:
                        result["verdicts"].append(self._verdict(claim, comparison, workload, device))
        result["summary"] = summarize(result, self.machine)
        return result

    def _unmeasurable(self, claim: Claim) -> str | None:
        if claim.kind == "devices":
            gpus = self.machine.gpus
            return (f"needs more than one device: this machine has {gpus or 'no'} GPU{'s' * (gpus != 1)} "
                    "the frameworks see, and xprof's workloads each run on one device (a multi-device "
                    "workload is not built yet)")
        if claim.kind == "utilization":
            if self.machine.device == "cpu":
                why = f"NVML: {self.machine.nvml}" if self.machine.nvml else "the claims are checked on the CPU"
                return f"needs an NVIDIA GPU: no GPU here ({why})"
            if self.machine.nvml:
                return f"needs NVML's utilization samples: NVML is unavailable ({self.machine.nvml})"
        return None

    def _verdict(self, claim: Claim, comparison: Comparison, workload: str, device: str) -> dict:
        entry = {"workload": workload, "mode": comparison.mode, "device": device,
                 "batch_size": comparison.batch_size, "comparison": str(comparison),
                 "verdict": NOT_MEASURED, "ratio": None, "ci_low": None, "ci_high": None, "runs": [],
                 "values": None, "reason": None, "command": None, "notes": []}
        if claim.kind == "code_lines":
            return self._lines_verdict(entry, comparison, workload)
        runs = {}
        for role, side in (("claimed", comparison.claimed), ("other", comparison.other)):
            runs[role] = _latest(self.store, workload, side, comparison, self.size, device)
        missing = [(role, side) for role, side in (("claimed", comparison.claimed), ("other", comparison.other))
                   if runs[role] is None]
        if missing:
            commands = [run_hint(workload, side.framework, comparison.mode, side.execution, self.size,
                                 None, None if device == "cpu" and self.machine.device == "cpu" else device,
                                 comparison.batch_size) for _, side in missing]
            entry["reason"] = f"no ok run of {' nor '.join(str(side) for _, side in missing)}"
            entry["command"] = " && ".join(commands)
            return entry
        for run in runs.values():
            self.used_runs[run["id"]] = run
        entry["runs"] = [runs["claimed"]["id"], runs["other"]["id"]]
        if claim.kind == "utilization":
            return self._utilization_verdict(entry, runs)
        claimed, other = self._run_figures(runs["claimed"]), self._run_figures(runs["other"])
        row = step_time_difference(claimed, other, self.min_effect, self.confidence)
        entry["notes"] = [f"{workload}: {note}" for note in
                          stability_notes(str(comparison.claimed), claimed) + stability_notes(str(comparison.other), other)]
        entry["values"] = {"claimed": row.a_ms, "other": row.b_ms, "unit": "ms"}
        if claim.kind == "efficiency":
            flops = get_workload(workload).flops_per_step(self.size, comparison.mode, comparison.batch_size)
            entry["values"] = {"claimed": flops / row.a_ms / 1e6, "other": flops / row.b_ms / 1e6,
                               "unit": "GFLOP/s"}
            peak = run_peak(self.store, runs["claimed"])
            if peak and peak.flops_per_s:  # this device's measured (or datasheet) peak
                entry["values"].update(peak_flops_per_s=peak.flops_per_s, peak_source=peak.source,
                                       claimed_share=flops / row.a_ms * 1e3 / peak.flops_per_s,
                                       other_share=flops / row.b_ms * 1e3 / peak.flops_per_s)
        if len(claimed.repeats) < 2 or len(other.repeats) < 2:
            entry["reason"] = "fewer than 2 repeats on a side: no interval (rerun with --repeats 3 or more)"
        return _judged(entry, Interval(row.ratio, row.ci_low, row.ci_high, ""), row.significant)

    def _run_figures(self, run: dict):
        if run["id"] not in self._figures:
            self._figures[run["id"]] = run_figures(self.store, run)
        return self._figures[run["id"]]

    def _utilization_verdict(self, entry: dict, runs: dict) -> dict:
        values = {role: self.store.utilization_samples(run["id"], run["device"]) for role, run in runs.items()}
        empty = [role for role, samples in values.items() if not samples]
        if empty:
            entry["reason"] = (f"no NVML samples stored with the {' and '.join(empty)} side's run "
                               "(rerun with --telemetry-interval below the run's length)")
            return entry
        interval = welch_log_ratio(values["other"], values["claimed"], self.confidence)
        claimed, other = (sum(v) / len(v) for v in (values["claimed"], values["other"]))
        entry["values"] = {"claimed": claimed, "other": other, "unit": "% utilization",
                           "samples": [len(values["claimed"]), len(values["other"])]}
        significant = is_significant(interval, claimed - other, self.min_effect, UTILIZATION_RESOLUTION)
        return _judged(entry, interval, significant)

    def _lines_verdict(self, entry: dict, comparison: Comparison, workload: str) -> dict:
        lines = {role: code_lines(workload, side.framework)
                 for role, side in (("claimed", comparison.claimed), ("other", comparison.other))}
        claimed, other = (sum(lines[role].values()) for role in ("claimed", "other"))
        entry["values"] = {"claimed": claimed, "other": other, "unit": "lines",
                           "parts": {"claimed": lines["claimed"], "other": lines["other"]}}
        # a count, not a sample: its interval is the count itself
        ratio = other / claimed
        return _judged(entry, Interval(ratio, ratio, ratio, "exact"),
                       is_significant(Interval(ratio, ratio, ratio, "exact"), other - claimed, self.min_effect, 0))

    def environment(self) -> dict:
        """The machine the verdicts are about, as the runs they used recorded it."""
        newest = {}
        for run in sorted(self.used_runs.values(), key=lambda r: r["started_at"]):
            newest[run["framework"]] = run
        envs = {fw: json.loads(run.get("env") or "{}") for fw, run in newest.items()}
        host = next(iter(envs.values()), None) or _this_host()
        return {
            "host": host.get("hostname"), "cpu": host.get("cpu_model"), "logical_cores": host.get("logical_cores"),
            "gpus": host.get("framework_gpus") or [g.get("name") for g in host.get("gpus") or []
                                                     if isinstance(g, dict)],
            "device": self.machine.device,
            "frameworks": {fw: {"version": env.get("framework_version"), "threads": env.get("threads"),
                                "cuda": env.get("cuda") or env.get("cuda_build") if self.machine.device != "cpu"
                                else None} for fw, env in envs.items()},
            "runs": len(self.used_runs),
            "runs_from": min((r["started_at"] for r in self.used_runs.values()), default=None),
            "runs_to": max((r["started_at"] for r in self.used_runs.values()), default=None),
        }


def _this_host() -> dict:
    from profiler.telemetry.host import environment

    return environment()


def _judged(entry: dict, interval: Interval, significant: bool) -> dict:
    entry.update(ratio=_finite(interval.estimate), ci_low=_finite(interval.low), ci_high=_finite(interval.high))
    if not significant:
        entry["verdict"] = NO_DIFFERENCE
    else:
        entry["verdict"] = HOLDS if interval.estimate > 1 else REVERSED
    return entry


def _finite(value):
    return None if value is None or not math.isfinite(value) else value


def summarize(result: dict, machine: Machine) -> str:
    """'holds on 4 of 7 workloads, reversed on 2, n.s. on 1', per comparison (and device
    where a claim is checked on more than one)."""
    if result["not_measured"]:
        return f"not measured here: {result['not_measured']}"
    groups: dict[tuple, list[dict]] = {}
    for verdict in result["verdicts"]:
        groups.setdefault((verdict["comparison"], verdict["device"]), []).append(verdict)
    parts = []
    for (comparison, device), verdicts in groups.items():
        counts = Counter(v["verdict"] for v in verdicts)
        words = [f"{label} on {counts[kind]}" for kind, label in
                 ((HOLDS, "holds"), (REVERSED, "reversed"), (NO_DIFFERENCE, "n.s."), (NOT_MEASURED, "not measured"))
                 if counts[kind]]
        words[0] += f" of {len(verdicts)} workload{'s' * (len(verdicts) != 1)}"
        where = f"{comparison}" + (f" on {device}" if result["kind"] == "efficiency" else "")
        parts.append(f"{where}: {', '.join(words)}")
    if result["kind"] == "efficiency" and machine.device == "cpu":
        parts.append("gpu: not measured here (no GPU the frameworks see)")
    return "; ".join(parts)


def machine_here(device_flag: str | None) -> Machine:
    """This machine as the claims see it: the device `--device` names (default as `xprof
    run` chooses), how many GPUs the frameworks see, and NVML's state."""
    from profiler.collect.devices import gpu_may_exist, gpus_seen, parse_device, resolve_device
    from profiler.telemetry.nvml import Nvml

    # each framework asked once, in a subprocess, and only where a GPU may be there or is named
    asked = gpu_may_exist() or (device_flag is not None and parse_device(device_flag) != "cpu")
    seen = gpus_seen(list(FRAMEWORKS)) if asked else {fw: 0 for fw in FRAMEWORKS}
    device = resolve_device(device_flag, list(FRAMEWORKS), probe=lambda frameworks: seen, may_exist=lambda: asked)
    nvml = Nvml()
    return Machine(device, min(seen.values(), default=0), None if nvml.available else nvml.reason)

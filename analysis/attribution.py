"""Each timed event of a run given to a model layer and to the op whose work it is, with
FLOPs and bytes where they can be modelled; see docs/roofline.md."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import fmean, median

from analysis.costs import COMPOSITE, ELEMENTWISE, NORM_BACKWARD, NORMS, REDUCTIONS, _RULES, op_cost
from analysis.figures import BETWEEN_OPS, RunFigures, run_figures
from analysis.taxonomy import KERAS_SUFFIX, TF_NODE
from profiler.store import Store
from workloads import WORKLOADS
from workloads.layers import OPTIMIZER, layer_costs, layer_names

# What a step does outside the model's layers, each named in a layer table.
FRAMEWORK = "(framework)"  # autograd bookkeeping, variable reads, casts outside any layer
LOSS = "loss"
BACKWARD = ":backward"
DEVICE_KINDS = ("kernel", "memcpy", "memset")
# Ops whose cost the model knows: an event inside one is part of its work.
OWNERS = frozenset(_RULES) | COMPOSITE | ELEMENTWISE | REDUCTIONS | NORMS | NORM_BACKWARD
# TensorFlow's scopes for the loss and the optimizer (Keras 3 names them so).
TF_LOSS_SCOPES = re.compile(r"^(sparse_categorical_crossentropy|categorical_crossentropy|mean_squared_error"
                            r"|compile_loss|loss)$")
TF_OPTIMIZER_SCOPES = re.compile(r"^(sgd|SGD|adam|Adam|loss_scale_optimizer|optimizer)$")
# TensorFlow op types that do a layer's GEMM or convolution work (oneDNN's too).
TF_COMPUTE_TYPE = re.compile(r"MatMul|Conv\dD|Conv2DBackprop|Einsum|CudnnRNN|BlockLSTM")


@dataclass
class Cell:
    """What one key (a layer, op or category) did in one step."""

    time_ns: int = 0
    ops: int = 0
    kernels: int = 0
    flops: float = 0
    bytes: float = 0
    modelled: int = 0  # calls of the key's ops with a cost
    unmodelled: int = 0  # calls without one
    shapeless: int = 0  # of those, calls whose trace recorded no shapes


@dataclass
class Attribution:
    run: dict
    basis: str
    by: str
    # (repeat, step) -> key -> Cell
    steps: dict[tuple[int, int], dict[str, Cell]] = field(default_factory=dict)
    walls_ns: dict[tuple[int, int], int] = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)  # the catalog's, when the workload is known
    notes: list[str] = field(default_factory=list)

    def keys(self) -> list[str]:
        seen = dict.fromkeys(self.layers)
        for cells in self.steps.values():
            seen.update(dict.fromkeys(cells))
        return list(seen)

    def repeats(self) -> list[int]:
        return sorted({repeat for repeat, _ in self.steps})

    def per_repeat_ms(self, key: str, repeats: list[int] | None = None) -> list[float]:
        """Median time per step of `key`, one value per repeat (of `repeats`: all)."""
        by_repeat = defaultdict(list)
        for (repeat, _), cells in self.steps.items():
            by_repeat[repeat].append(cells[key].time_ns / 1e6 if key in cells else 0.0)
        return [median(by_repeat[r]) if by_repeat[r] else 0.0 for r in (self.repeats() if repeats is None else repeats)]

    def per_step(self, key: str, attribute: str) -> float:
        """Mean of a Cell attribute per step, over every profiled step."""
        values = [getattr(cells[key], attribute) if key in cells else 0 for cells in self.steps.values()]
        return fmean(values) if values else 0.0

    def shapeless(self, key: str) -> bool:
        """Whether every unmodelled call of `key` lacked shapes in the trace."""
        cells = [cells[key] for cells in self.steps.values() if key in cells]
        return bool(cells) and all(cell.shapeless == cell.unmodelled for cell in cells) and any(
            cell.shapeless for cell in cells)

    def coverage(self, key: str) -> tuple[int, int]:
        modelled = sum(cells[key].modelled for cells in self.steps.values() if key in cells)
        unmodelled = sum(cells[key].unmodelled for cells in self.steps.values() if key in cells)
        return modelled, unmodelled


def tf_layer(text: str, layers: set[str], model: str | None = None) -> str:
    """A TensorFlow op's layer from its node path ('cnn_1/block_conv2_1/convolution',
    'gradient_tape/cnn_1/...' for its gradient): the model scope's child, Keras's
    '_1' suffixes removed; the loss and optimizer by their scopes."""
    node = TF_NODE.match(text)
    path = (node["node"] if node else text).split("/")
    backward = path[0] == "gradient_tape"
    if backward:
        path = path[1:]
    scopes = [KERAS_SUFFIX.sub("", scope) for scope in path[:-1]]
    if scopes and scopes[0] == model:  # the Keras model's own scope (lstm's is a layer's name too)
        scopes = scopes[1:]
    for index, scope in enumerate(scopes):
        if TF_OPTIMIZER_SCOPES.match(scope) and index == 0:
            return OPTIMIZER
        if TF_LOSS_SCOPES.match(scope):
            return LOSS + (BACKWARD if backward else "")
        if scope in layers and index <= 2:
            return scope + (BACKWARD if backward else "")
    return FRAMEWORK


def attribute(store: Store, run: dict, by: str) -> Attribution:
    """Every timed event of the run's profiled steps under a key: its layer (forward and
    backward together), its op (the outermost modelled op it runs inside), or its
    category; with op counts, kernel counts, FLOPs and bytes per step."""
    run_id = run["id"]
    basis = "device" if store.has_device_events(run_id) else "cpu"
    known = run.get("workload") in WORKLOADS
    # an import need not say its size: the largest size's layers hold every size's
    catalog = layer_names(run["workload"], run["size"] or "large") if known else []
    result = Attribution(run, basis, by, layers=catalog if by == "layer" else [])
    tensorflow = run["framework"] == "tensorflow"
    layer_set = set(catalog)
    stacks: dict[tuple, list] = defaultdict(list)  # (repeat, stream) -> [(end, owner key, owner op)]
    launched: dict[tuple[int, int], tuple[str, str | None]] = {}  # (repeat, correlation) -> key, layer
    compute: dict[tuple, list] = defaultdict(list)  # (repeat, step, layer) -> TF compute events' cells
    scoped = False
    for (repeat, step, name, op, category, kind, device, stream, start, dur, self_ns, correlation,
         layer, shapes) in store.attribution_events(run_id, f"--by {by}"):
        own_op = op or name
        if kind in DEVICE_KINDS:
            launcher_key, launcher_layer = launched.get((repeat, correlation), (None, None))
            key, layer, owner = launcher_key or own_op, layer or launcher_layer, False
            if tensorflow and ":" in key:  # a kernel's tf_op "node:Type": its row is its op type's
                key = key.rpartition(":")[2]
        else:
            stack = stacks[repeat, stream]
            while stack and stack[-1][0] <= start:
                stack.pop()
            parent = stack[-1][1] if stack else None
            owner = parent is None and own_op in OWNERS
            key = parent or own_op
            stack.append((start + dur, key if (parent or owner) else None))
            if kind == "runtime" and correlation is not None:
                launched[repeat, correlation] = (parent, layer)
        scoped = scoped or layer is not None
        if tensorflow:
            layer = tf_layer(name if kind == "cpu_op" else own_op, layer_set, run.get("workload"))
        elif layer is None:
            layer = OPTIMIZER if own_op.startswith("Optimizer.step#") else FRAMEWORK
        if step is None:
            continue
        group = {"layer": layer.removesuffix(BACKWARD), "op": key, "category": category or "other"}[by]
        cell = result.steps.setdefault((repeat, step), {}).setdefault(group, Cell())
        timed = kind in DEVICE_KINDS if basis == "device" else kind == "cpu_op"
        if timed:
            cell.time_ns += dur if basis == "device" else (self_ns or 0)
        cell.ops += kind == "cpu_op"
        cell.kernels += kind == "kernel"
        if tensorflow and kind == "cpu_op" and TF_COMPUTE_TYPE.search(op or ""):
            compute[repeat, step, layer].append(cell)
        elif owner and by != "layer":
            cost = op_cost(own_op, shapes)
            if cost is None:
                cell.unmodelled += 1
                cell.shapeless += shapes is None
            else:
                cell.modelled += 1
                cell.flops += cost.flops
                cell.bytes += cost.bytes
    _step_walls(store, result)
    if known and run["size"] and run["mode"]:
        _catalog_costs(result, compute, tensorflow)
    elif known:
        result.notes.append("the run does not say its size or mode (an import without --size and --mode): "
                            "the catalog's FLOPs need both")
    if not tensorflow and not scoped and by == "layer":
        result.notes.append("this trace has no layer scopes (an import, or torch.compile's graph): "
                            f"its op time is all {FRAMEWORK}")
    return result


def _step_walls(store: Store, result: Attribution) -> None:
    """Profiled step walls; on the CPU the time no op accounts for is BETWEEN_OPS."""
    for row in store.step_rows(result.run["id"]):
        if row["profiled"] and (row["repeat"], row["step"]) in result.steps:
            result.walls_ns[row["repeat"], row["step"]] = row["wall_ns"]
    if result.basis != "cpu":
        return
    for where, cells in result.steps.items():
        if where in result.walls_ns:
            in_ops = sum(cell.time_ns for cell in cells.values())
            cells[BETWEEN_OPS] = Cell(time_ns=max(result.walls_ns[where] - in_ops, 0))


def _catalog_costs(result: Attribution, compute: dict, tensorflow: bool) -> None:
    """Layers take their FLOPs and bytes from the catalog; by op or category,
    TensorFlow's GEMM and convolution ops share their layer's FLOPs (TensorFlow's trace
    records no shapes), each phase's among the ops of that phase in the step."""
    run = result.run
    costs = layer_costs(run["workload"], run["size"], run["mode"], run.get("dtype") or "fp32",
                        run.get("batch_size"))
    if result.by == "layer":
        for cells in result.steps.values():
            for key, cost in costs.items():
                cell = cells.setdefault(key, Cell())
                if cost["flops"] is not None:
                    cell.flops, cell.bytes, cell.modelled = cost["flops"], cost["bytes"], 1
        return
    if not tensorflow:
        return
    for (repeat, step, layer), cells in compute.items():
        name, backward = layer.removesuffix(BACKWARD), layer.endswith(BACKWARD)
        phases = costs.get(name, {}).get("phases")
        if not phases:
            for cell in cells:
                cell.unmodelled += 1
            continue
        share = phases[backward] / len(cells)
        for cell in cells:
            cell.flops += share
            cell.modelled += 1
    for cells in result.steps.values():
        for cell in cells.values():
            if cell.ops and not cell.modelled:
                cell.unmodelled = max(cell.unmodelled, 1)


def layer_figures(store: Store, run: dict) -> RunFigures:
    """A run's figures (see analysis/figures.py) with its time per step by layer."""
    figures = run_figures(store, run, "category")
    attribution = attribute(store, run, "layer")
    figures.per_repeat = {key: attribution.per_repeat_ms(key, figures.repeats) for key in attribution.keys()}
    return figures

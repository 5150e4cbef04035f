"""Each workload's layers, named once for both frameworks (Keras layer names, torch
profiler scopes), with one FLOP and traffic formula per layer that sums to the workload's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from .catalog import get_workload
from .spec import MODES, check_choice

# The torch workloads mark each layer's forward ops with record_function(LAYER_SCOPE + name).
LAYER_SCOPE = "xprof.layer:"
# What a step does outside the model's layers, named in every layer table.
OPTIMIZER = "optimizer"
# Bytes an element takes at each precision (mixed precision computes in 2 bytes).
ELEMENT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}

Config = Mapping[str, int]


@dataclass(frozen=True)
class Layer:
    name: str
    # Elements of the layer's input and output for one batch (what it must read and write).
    inputs: Callable[[Config], int]
    outputs: Callable[[Config], int]
    # Multiply-accumulates of its forward pass; None for element-wise work (activations,
    # norms, pooling, adds, the loss), which the workload's FLOPs do not count.
    macs: Callable[[Config], int] | None = None
    # Of those MACs, the ones that read the batch itself (no input gradient there).
    data_macs: Callable[[Config], int] = lambda c: 0
    params: Callable[[Config], int] = lambda c: 0

    def flops(self, config: Config, mode: str) -> int | None:
        """FLOPs of one step (2 per MAC), forward and, in training, backward: a weight
        gradient and, but for the part reading the batch, an input gradient."""
        if self.macs is None:
            return None
        macs = self.macs(config)
        if mode == "infer":
            return 2 * macs
        return 2 * (macs + 2 * macs - self.data_macs(config))

    def phase_flops(self, config: Config, mode: str) -> tuple[int, int] | None:
        """(forward, backward) FLOPs of one step; None where element-wise."""
        if self.macs is None:
            return None
        macs = self.macs(config)
        return 2 * macs, 0 if mode == "infer" else 2 * (2 * macs - self.data_macs(config))

    def bytes(self, config: Config, mode: str, dtype: str) -> int:
        """The least traffic of one step: forward reads input and weights and writes the
        output; backward reads the output's gradient, input and weights and writes the
        input's and weights' gradients."""
        inputs, outputs, params = self.inputs(config), self.outputs(config), self.params(config)
        forward = inputs + params + outputs
        backward = 0 if mode == "infer" else outputs + inputs + params + inputs + params
        return ELEMENT_BYTES[dtype] * (forward + backward)


def _dense(name, rows, fan_in, fan_out, data=False):
    macs = lambda c: rows(c) * fan_in(c) * fan_out(c)  # noqa: E731
    return Layer(name, lambda c: rows(c) * fan_in(c), lambda c: rows(c) * fan_out(c), macs,
                 macs if data else (lambda c: 0), lambda c: fan_in(c) * fan_out(c) + fan_out(c))


def _elementwise(name, elements, outputs=None):
    return Layer(name, elements, outputs or elements)


def _batch(c):
    return c["batch"]


def _key(key):
    return lambda c: c[key]


def _loss(outputs):
    return _elementwise("loss", outputs, lambda c: 1)


def _mlp(c):
    layers = [_dense("dense0", _batch, _key("features"), _key("hidden"), data=True)]
    layers += [_dense(f"dense{i}", _batch, _key("hidden"), _key("hidden")) for i in range(1, c["layers"])]
    return layers + [_dense("head", _batch, _key("hidden"), _key("classes")), _loss(lambda c: c["batch"] * c["classes"])]


def _cnn(c):
    s, half = c["image"], c["image"] // 2

    def conv(name, cin, side, data=False):
        macs = lambda c: c["batch"] * side ** 2 * 9 * cin(c) * c["width"]  # noqa: E731
        return Layer(name, lambda c: c["batch"] * side ** 2 * cin(c), lambda c: c["batch"] * side ** 2 * c["width"],
                     macs, macs if data else (lambda c: 0), lambda c: 9 * cin(c) * c["width"])

    def norm(name, side):
        full = lambda c: c["batch"] * side ** 2 * c["width"]  # noqa: E731
        return Layer(name, full, full, params=lambda c: 2 * c["width"])

    full = lambda c: c["batch"] * s * s * c["width"]  # noqa: E731
    pooled = lambda c: c["batch"] * half * half * c["width"]  # noqa: E731
    return [conv("stem_conv", _key("channels"), s, data=True), norm("stem_bn", s), _elementwise("stem_relu", full),
            _elementwise("stem_pool", full, pooled),
            conv("block_conv1", _key("width"), half), norm("block_bn1", half), _elementwise("block_relu1", pooled),
            conv("block_conv2", _key("width"), half), norm("block_bn2", half),
            _elementwise("block_add", lambda c: 2 * pooled(c), pooled), _elementwise("block_relu2", pooled),
            _elementwise("pool", pooled, lambda c: c["batch"] * c["width"]),
            _dense("head", _batch, _key("width"), _key("classes")), _loss(lambda c: c["batch"] * c["classes"])]


def _lstm(c):
    macs = lambda c: c["batch"] * c["seq"] * 4 * c["hidden"] * (c["features"] + c["hidden"])  # noqa: E731
    lstm = Layer("lstm", lambda c: c["batch"] * c["seq"] * c["features"], lambda c: c["batch"] * c["hidden"],
                 macs, lambda c: c["batch"] * c["seq"] * 4 * c["hidden"] * c["features"],
                 lambda c: 4 * c["hidden"] * (c["features"] + c["hidden"]) + 4 * c["hidden"])
    return [lstm, _dense("head", _batch, _key("hidden"), _key("classes")),
            _loss(lambda c: c["batch"] * c["classes"])]


def _transformer(c):
    tokens = lambda c: c["batch"] * c["seq"]  # noqa: E731
    model = lambda c: tokens(c) * c["d_model"]  # noqa: E731
    attention = Layer(
        "attention", model, model,
        lambda c: c["batch"] * (c["seq"] * 4 * c["d_model"] ** 2 + 2 * c["seq"] ** 2 * c["d_model"]),
        lambda c: tokens(c) * 3 * c["d_model"] ** 2,  # query, key, value projections read the batch
        lambda c: 4 * (c["d_model"] ** 2 + c["d_model"]))

    def norm(name):
        return Layer(name, model, model, params=lambda c: 2 * c["d_model"])

    return [attention, _elementwise("residual1", lambda c: 2 * model(c), model), norm("norm1"),
            _dense("ff1", tokens, _key("d_model"), _key("ff")), _dense("ff2", tokens, _key("ff"), _key("d_model")),
            _elementwise("residual2", lambda c: 2 * model(c), model), norm("norm2"),
            _elementwise("pool", model, lambda c: c["batch"] * c["d_model"]),
            _dense("head", _batch, _key("d_model"), _key("classes")), _loss(lambda c: c["batch"] * c["classes"])]


def _matmul(c):
    macs = lambda c: c["m"] * c["n"] * c["k"]  # noqa: E731
    layer = Layer("matmul", lambda c: c["m"] * c["n"], lambda c: c["m"] * c["k"], macs, macs,
                  lambda c: c["n"] * c["k"])
    return [layer, _loss(lambda c: c["m"] * c["k"])]


def _conv2d(c):
    pixels = lambda c: c["batch"] * c["image"] ** 2  # noqa: E731
    macs = lambda c: pixels(c) * 9 * c["channels"] * c["filters"]  # noqa: E731
    layer = Layer("conv", lambda c: pixels(c) * c["channels"], lambda c: pixels(c) * c["filters"], macs, macs,
                  lambda c: 9 * c["channels"] * c["filters"] + c["filters"])
    return [layer, _loss(lambda c: pixels(c) * c["filters"])]


def _linear(c):
    layer = Layer("linear", _batch, _batch, _batch, _batch, lambda c: 1)
    return [layer, _loss(_batch)]


_LAYERS = {"linear": _linear, "mlp": _mlp, "cnn": _cnn, "lstm": _lstm, "transformer": _transformer,
           "matmul": _matmul, "conv2d": _conv2d}


def layers_of(workload: str, size: str, batch_size: int | None = None) -> list[Layer]:
    """The workload's layers in forward order (the loss last)."""
    return _LAYERS[get_workload(workload).name](get_workload(workload).config(size, batch_size))


def layer_names(workload: str, size: str = "tiny") -> list[str]:
    return [layer.name for layer in layers_of(workload, size)]


def layer_costs(workload: str, size: str, mode: str, dtype: str = "fp32",
                batch_size: int | None = None) -> dict[str, dict]:
    """Per layer, and for the optimizer's update, the FLOPs (None where element-wise) and
    least bytes of one step; the FLOPs sum to the workload's FLOPs per step."""
    check_choice("mode", mode, MODES)
    config = get_workload(workload).config(size, batch_size)
    costs = {layer.name: {"flops": layer.flops(config, mode), "bytes": layer.bytes(config, mode, dtype),
                          "phases": layer.phase_flops(config, mode)}
             for layer in layers_of(workload, size, batch_size)}
    if mode == "train":
        # SGD reads each weight and its gradient and writes the weight: a multiply-add each
        params = get_workload(workload).count_params(config)
        costs[OPTIMIZER] = {"flops": 2 * params, "bytes": ELEMENT_BYTES["fp32"] * 3 * params, "phases": None}
    return costs

"""FLOPs and bytes of a torch op from the shapes its trace records (record_shapes' Input
Dims, Input type and Concrete Inputs); see docs/roofline.md for each formula."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache

# Bytes of an element by the trace's "Input type".
ELEMENT_BYTES = {"float": 4, "double": 8, "c10::Half": 2, "c10::BFloat16": 2, "long int": 8, "int": 4,
                 "bool": 1, "unsigned char": 1, "signed char": 1, "short int": 2, "c10::Float8_e4m3fn": 1}
# Ops that move no data and do no arithmetic: views and metadata.
NO_WORK = frozenset(f"aten::{name}" for name in (
    "view", "_unsafe_view", "as_strided", "as_strided_", "t", "transpose", "permute", "expand", "reshape",
    "unsqueeze", "squeeze", "select", "slice", "detach", "detach_", "alias", "resolve_conj", "resolve_neg",
    "empty", "empty_like", "empty_strided", "resize_", "unflatten", "flatten", "split", "chunk", "unbind",
    "lift_fresh", "_reshape_alias", "contiguous", "numel", "size", "stride", "result_type", "broadcast_tensors"))
# Element-wise ops: one FLOP an output element, every operand read and the output written.
ELEMENTWISE = frozenset(f"aten::{name}" for name in (
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "relu", "relu_", "clamp_min", "clamp_min_",
    "threshold_backward", "sigmoid", "sigmoid_", "tanh", "tanh_", "gelu", "gelu_backward", "sigmoid_backward",
    "tanh_backward", "neg", "exp", "log", "sqrt", "rsqrt", "pow", "addcmul_", "addcdiv_", "lerp_", "fill_",
    "zero_", "copy_", "clone", "_to_copy", "where", "masked_fill", "masked_fill_", "dropout", "native_dropout",
    "_softmax", "softmax", "_log_softmax", "log_softmax", "_log_softmax_backward_data",
    "_softmax_backward_data", "mse_loss", "mse_loss_backward", "nll_loss_forward", "nll_loss_backward",
    "max_pool2d_with_indices", "max_pool2d_with_indices_backward", "_foreach_add_", "_foreach_mul_"))
REDUCTIONS = frozenset(f"aten::{name}" for name in ("sum", "mean", "amax", "max", "min", "norm", "var", "std"))
NORMS = frozenset(f"aten::{name}" for name in (
    "batch_norm", "native_batch_norm", "_batch_norm_impl_index", "layer_norm", "native_layer_norm"))
NORM_BACKWARD = frozenset(f"aten::{name}" for name in ("native_batch_norm_backward", "native_layer_norm_backward"))
# FLOPs an element of a normalization: mean, variance, normalize, scale and shift.
NORM_FLOPS_PER_ELEMENT = 5


@dataclass(frozen=True)
class Cost:
    flops: int
    bytes: int


@dataclass(frozen=True)
class Inputs:
    dims: list
    types: list
    values: list

    def tensor(self, index: int) -> list[int] | None:
        """The dims of input `index` where it is a tensor, else None."""
        return self.dims[index] if index < len(self.dims) and _is_tensor(self, index) else None

    def element_bytes(self) -> int:
        """Bytes an element of the first typed tensor input takes (4 where unknown)."""
        for kind in self.types:
            if kind in ELEMENT_BYTES:
                return ELEMENT_BYTES[kind]
        return 4

    def value(self, index: int):
        """The concrete value of a scalar input, parsed ('[1, 1]' -> [1, 1]); None if absent."""
        if index >= len(self.values) or self.values[index] in ("", None):
            return None
        try:
            return json.loads(str(self.values[index]).replace("False", "false").replace("True", "true"))
        except ValueError:
            return None


def _numel(dims) -> int:
    return math.prod(dims) if dims is not None else 0


@lru_cache(maxsize=4096)
def parse_shapes(text: str | None) -> Inputs | None:
    if not text:
        return None
    try:
        parts = json.loads(text)
    except ValueError:
        return None
    dims, types, values = (parts + [[], [], []])[:3]
    return Inputs(dims, types, values)


def op_cost(op: str, shapes: str | None) -> Cost | None:
    """FLOPs and least bytes of one call of `op` with the recorded `shapes`; None where
    the model has no formula or the trace has no shapes for it."""
    inputs = parse_shapes(shapes)
    if op in NO_WORK:
        return Cost(0, 0)
    if inputs is None:
        return None
    rule = _RULES.get(op)
    if rule is not None:
        return rule(inputs)
    if op in ELEMENTWISE:
        return _elementwise(inputs)
    if op in REDUCTIONS:
        return _reduction(inputs)
    if op in NORMS:
        return _norm(inputs, 1)
    if op in NORM_BACKWARD:
        return _norm(inputs, 2)
    return None


def _tensors(inputs: Inputs) -> list[list[int]]:
    return [d for i, d in enumerate(inputs.dims) if _is_tensor(inputs, i)]


def _is_tensor(inputs: Inputs, index: int) -> bool:
    kind = inputs.types[index] if index < len(inputs.types) else None
    dims = inputs.dims[index]
    return kind in ELEMENT_BYTES and isinstance(dims, list) and all(isinstance(d, int) for d in dims)


def _elementwise(inputs: Inputs) -> Cost | None:
    tensors = _tensors(inputs)
    if not tensors:
        return None
    out = max(map(_numel, tensors))
    return Cost(out, inputs.element_bytes() * (sum(map(_numel, tensors)) + out))


def _reduction(inputs: Inputs) -> Cost | None:
    tensors = _tensors(inputs)
    if not tensors:
        return None
    n = _numel(tensors[0])
    return Cost(n, inputs.element_bytes() * n)


def _norm(inputs: Inputs, passes: int) -> Cost | None:
    tensors = _tensors(inputs)
    if not tensors:
        return None
    n = _numel(tensors[0])
    return Cost(passes * NORM_FLOPS_PER_ELEMENT * n, inputs.element_bytes() * 2 * passes * n)


def _gemm(m: int, k: int, n: int, batch: int, size: int, extra_elements: int = 0) -> Cost:
    return Cost(2 * batch * m * k * n, size * (batch * (m * k + k * n + m * n) + extra_elements))


def _mm(inputs: Inputs) -> Cost | None:
    a, b = inputs.tensor(0), inputs.tensor(1)
    if not (a and b and len(a) == 2 and len(b) == 2):
        return None
    return _gemm(a[0], a[1], b[1], 1, inputs.element_bytes())


def _addmm(inputs: Inputs) -> Cost | None:
    bias, a, b = inputs.tensor(0), inputs.tensor(1), inputs.tensor(2)
    if not (a and b and len(a) == 2 and len(b) == 2):
        return None
    return _gemm(a[0], a[1], b[1], 1, inputs.element_bytes(), _numel(bias))


def _bmm(inputs: Inputs) -> Cost | None:
    a, b = inputs.tensor(0), inputs.tensor(1)
    if not (a and b and len(a) == 3 and len(b) == 3):
        return None
    return _gemm(a[1], a[2], b[2], a[0], inputs.element_bytes())


def _baddbmm(inputs: Inputs) -> Cost | None:
    bias, a, b = inputs.tensor(0), inputs.tensor(1), inputs.tensor(2)
    if not (a and b and len(a) == 3 and len(b) == 3):
        return None
    return _gemm(a[1], a[2], b[2], a[0], inputs.element_bytes(), _numel(bias))


def _matmul(inputs: Inputs) -> Cost | None:
    """torch.matmul's broadcasting: vectors are promoted, leading dims batch."""
    a, b = inputs.tensor(0), inputs.tensor(1)
    if not a or not b:
        return None
    a2 = [1] + a if len(a) == 1 else a
    b2 = b + [1] if len(b) == 1 else b
    batch = math.prod(_broadcast(a2[:-2], b2[:-2]))
    m, k, n = a2[-2], a2[-1], b2[-1]
    # a broadcast operand is read once, not once per batch
    return Cost(2 * batch * m * k * n, inputs.element_bytes() * (_numel(a) + _numel(b) + batch * m * n))


def _broadcast(a: list[int], b: list[int]) -> list[int]:
    width = max(len(a), len(b))
    a, b = [1] * (width - len(a)) + a, [1] * (width - len(b)) + b
    return [max(x, y) for x, y in zip(a, b)]


def _linear(inputs: Inputs) -> Cost | None:
    x, w, bias = inputs.tensor(0), inputs.tensor(1), inputs.tensor(2)
    if not x or not w or len(w) != 2:
        return None
    rows = _numel(x[:-1])
    return _gemm(rows, w[1], w[0], 1, inputs.element_bytes(), _numel(bias))


def _conv_output(spatial: list[int], kernel: list[int], stride, padding, dilation) -> list[int] | None:
    def each(value, default):
        if value is None:
            return [default] * len(spatial)
        return value if isinstance(value, list) and len(value) == len(spatial) else [value] * len(spatial)

    stride, padding, dilation = each(stride, None), each(padding, None), each(dilation, 1)
    if None in stride or None in padding or not all(isinstance(v, int) for v in (*stride, *padding, *dilation)):
        return None
    return [(size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, k, s, p, d in zip(spatial, kernel, stride, padding, dilation)]


def _convolution(inputs: Inputs) -> Cost | None:
    """aten::convolution and conv1d/2d/3d: input, weight, bias, stride, padding,
    dilation (transposed convolutions are not modelled)."""
    x, w = inputs.tensor(0), inputs.tensor(1)
    if not x or not w or len(x) != len(w) or len(x) < 3:
        return None
    if inputs.value(6) is True:  # aten::convolution's `transposed`
        return None
    out = _conv_output(x[2:], w[2:], inputs.value(3), inputs.value(4), inputs.value(5))
    if out is None:
        return None
    macs = x[0] * w[0] * _numel(out) * w[1] * _numel(w[2:])
    output = x[0] * w[0] * _numel(out)
    return Cost(2 * macs, inputs.element_bytes() * (_numel(x) + _numel(w) + output + _numel(inputs.tensor(2))))


def _convolution_backward(inputs: Inputs) -> Cost | None:
    """aten::convolution_backward(grad_output, input, weight, ..., output_mask): each
    gradient the mask asks for (input, weight) costs what the forward pass did."""
    grad, x, w = inputs.tensor(0), inputs.tensor(1), inputs.tensor(2)
    if not grad or not x or not w:
        return None
    mask = inputs.value(10)
    wanted = [True, True] if not isinstance(mask, list) else [bool(m) for m in mask[:2]]
    macs = grad[0] * grad[1] * _numel(grad[2:]) * w[1] * _numel(w[2:])
    size = inputs.element_bytes()
    traffic = _numel(grad) + _numel(x) * (1 + wanted[0]) + _numel(w) * (1 + wanted[1])
    return Cost(2 * macs * sum(wanted), size * traffic)


def _attention(inputs: Inputs, passes: int) -> Cost | None:
    """Scaled dot-product attention: scores (L x S x E) and mixing (L x S x Ev) per
    batch and head; backward does twice the forward's GEMMs."""
    q, k, v = inputs.tensor(0), inputs.tensor(1), inputs.tensor(2)
    if not q or not k or not v or len(q) < 3:
        return None
    batch = _numel(q[:-2])
    length, source, depth, value_depth = q[-2], k[-2], q[-1], v[-1]
    flops = 2 * batch * length * source * (depth + value_depth) * passes
    traffic = _numel(q) + _numel(k) + _numel(v) + batch * length * value_depth
    return Cost(flops, inputs.element_bytes() * traffic * passes)


def _lstm_layer(inputs: Inputs, x_index: int, w_ih_index: int, w_hh_index: int) -> Cost | None:
    """One LSTM layer over a sequence: per step, the 4 gates' input and recurrent GEMMs."""
    x, w_ih, w_hh = inputs.tensor(x_index), inputs.tensor(w_ih_index), inputs.tensor(w_hh_index)
    if not x or not w_ih or not w_hh or len(x) != 3:
        return None
    steps_times_batch = x[0] * x[1]
    gates, features, hidden = w_ih[0], w_ih[1], w_hh[1]
    macs = steps_times_batch * gates * (features + hidden)
    return Cost(2 * macs, inputs.element_bytes() * (_numel(x) + _numel(w_ih) + _numel(w_hh) + steps_times_batch * hidden))


def _lstm(inputs: Inputs) -> Cost | None:
    """aten::lstm(input, hx, params, ...): one layer's weights are the first two params."""
    x = inputs.tensor(0)
    params = inputs.dims[2] if len(inputs.dims) > 2 and isinstance(inputs.dims[2], list) else []
    if not x or len(params) < 2 or len(params) > 4:  # one layer, one direction only
        return None
    w_ih, w_hh = params[0], params[1]
    steps_times_batch = x[0] * x[1]
    macs = steps_times_batch * w_ih[0] * (w_ih[1] + w_hh[1])
    return Cost(2 * macs, inputs.element_bytes() * (_numel(x) + _numel(w_ih) + _numel(w_hh)
                                                    + steps_times_batch * w_hh[1]))


_RULES = {
    "aten::mm": _mm, "aten::addmm": _addmm, "aten::_addmm_activation": _addmm, "aten::bmm": _bmm,
    "aten::baddbmm": _baddbmm, "aten::matmul": _matmul, "aten::linear": _linear,
    "aten::convolution": _convolution, "aten::conv1d": _convolution, "aten::conv2d": _convolution,
    "aten::conv3d": _convolution, "aten::_convolution": _convolution,
    "aten::convolution_backward": _convolution_backward,
    "aten::scaled_dot_product_attention": lambda i: _attention(i, 1),
    "aten::_scaled_dot_product_flash_attention": lambda i: _attention(i, 1),
    "aten::_scaled_dot_product_flash_attention_for_cpu": lambda i: _attention(i, 1),
    "aten::_scaled_dot_product_efficient_attention": lambda i: _attention(i, 1),
    "aten::_scaled_dot_product_cudnn_attention": lambda i: _attention(i, 1),
    "aten::_scaled_dot_product_flash_attention_backward": lambda i: _attention(i, 2),
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward": lambda i: _attention(i, 2),
    "aten::_scaled_dot_product_efficient_attention_backward": lambda i: _attention(i, 2),
    "aten::_scaled_dot_product_cudnn_attention_backward": lambda i: _attention(i, 2),
    "aten::lstm": _lstm,
    "aten::mkldnn_rnn_layer": lambda i: _lstm_layer(i, 0, 1, 2),
    # its backward: the input and weight gradients, each the forward's GEMMs again
    "aten::mkldnn_rnn_layer_backward": lambda i: _twice(_lstm_layer(i, 0, 1, 2)),
}


def _twice(cost: Cost | None) -> Cost | None:
    return cost and Cost(2 * cost.flops, 2 * cost.bytes)
# Ops whose cost covers what runs inside them: an event inside one of these is its work
# (aten::linear holds aten::addmm; aten::convolution holds the backend's kernel).
COMPOSITE = frozenset(("aten::linear", "aten::matmul", "aten::convolution", "aten::conv1d", "aten::conv2d",
                       "aten::conv3d", "aten::convolution_backward", "aten::scaled_dot_product_attention",
                       "aten::lstm", "aten::batch_norm", "aten::layer_norm", "aten::native_layer_norm",
                       "aten::native_batch_norm", "aten::native_batch_norm_backward",
                       "aten::native_layer_norm_backward", "aten::dropout", "aten::mse_loss",
                       "aten::nll_loss_forward", "aten::_log_softmax"))

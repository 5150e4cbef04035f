"""The canonical workloads: their sizes and analytic parameter/FLOP formulas.

Every size config is shared verbatim by the torch and the TensorFlow builders, and
the formulas below are checked against the parameters each framework actually
creates (`xprof workloads --parity`).
"""

from __future__ import annotations

from .spec import WorkloadError, WorkloadSpec


def _linear_params(c):
    return 1


def _linear_macs(c):
    return c["batch"]


def _mlp_data_macs(c):
    return c["batch"] * c["features"] * c["hidden"]


def _mlp_params(c):
    f, h, n, k = c["features"], c["hidden"], c["layers"], c["classes"]
    return (f * h + h) + (n - 1) * (h * h + h) + (h * k + k)


def _mlp_macs(c):
    f, h, n, k = c["features"], c["hidden"], c["layers"], c["classes"]
    return c["batch"] * (f * h + (n - 1) * h * h + h * k)


def _cnn_params(c):
    cin, w, k = c["channels"], c["width"], c["classes"]
    stem = 9 * cin * w + 2 * w  # conv without bias, then batch norm (scale, shift)
    block = 2 * (9 * w * w + 2 * w)
    head = w * k + k
    return stem + block + head


def _cnn_macs(c):
    cin, w, s, k = c["channels"], c["width"], c["image"], c["classes"]
    half = s // 2
    return c["batch"] * (s * s * 9 * cin * w + 2 * half * half * 9 * w * w + w * k)


def _cnn_data_macs(c):
    return c["batch"] * c["image"] ** 2 * 9 * c["channels"] * c["width"]


def _lstm_params(c):
    f, h, k = c["features"], c["hidden"], c["classes"]
    # One bias vector per gate: torch's second (recurrent) bias is frozen at zero
    # because TF's LSTM has a single one and the two are only ever summed.
    return 4 * h * (f + h) + 4 * h + h * k + k


def _lstm_macs(c):
    f, h, k = c["features"], c["hidden"], c["classes"]
    return c["batch"] * (c["seq"] * 4 * h * (f + h) + h * k)


def _lstm_data_macs(c):
    return c["batch"] * c["seq"] * 4 * c["hidden"] * c["features"]


def _transformer_params(c):
    d, ff, k = c["d_model"], c["ff"], c["classes"]
    attention = 4 * (d * d + d)  # query, key, value and output projections
    norms = 2 * 2 * d
    feed_forward = d * ff + ff + ff * d + d
    head = d * k + k
    return attention + norms + feed_forward + head


def _transformer_macs(c):
    d, ff, k, t = c["d_model"], c["ff"], c["classes"], c["seq"]
    projections = t * 4 * d * d
    scores_and_mix = 2 * t * t * d
    return c["batch"] * (projections + scores_and_mix + t * 2 * d * ff + d * k)


def _transformer_data_macs(c):
    return c["batch"] * c["seq"] * 3 * c["d_model"] ** 2  # query, key, value projections


def _matmul_params(c):
    return c["n"] * c["k"]


def _matmul_macs(c):
    return c["m"] * c["n"] * c["k"]


def _conv2d_params(c):
    return 9 * c["channels"] * c["filters"] + c["filters"]


def _conv2d_macs(c):
    return c["batch"] * c["image"] ** 2 * 9 * c["channels"] * c["filters"]


WORKLOADS: dict[str, WorkloadSpec] = {
    spec.name: spec
    for spec in (
        WorkloadSpec(
            name="linear",
            description="y = w*x on x = 1..4, y = 2x; SGD lr 0.01, MSE, one epoch a step",
            sizes={size: {"batch": 4} for size in ("tiny", "small", "large")},
            count_params=_linear_params,
            forward_macs=_linear_macs,
            data_layer_macs=_linear_macs,
            parity_atol=1e-6,
            notes=(
                "No bias: with one, 100 epochs at lr 0.01 leave the slow (bias) "
                "direction 26% unconverged and predict 9.68 for 5.0, not 10."
            ),
        ),
        WorkloadSpec(
            name="mlp",
            description="ReLU multi-layer perceptron, cross-entropy",
            sizes={
                "tiny": {"batch": 32, "features": 64, "hidden": 128, "layers": 2, "classes": 10},
                "small": {"batch": 64, "features": 256, "hidden": 512, "layers": 3, "classes": 10},
                "large": {"batch": 512, "features": 1024, "hidden": 4096, "layers": 4, "classes": 1000},
            },
            count_params=_mlp_params,
            forward_macs=_mlp_macs,
            data_layer_macs=_mlp_data_macs,
        ),
        WorkloadSpec(
            name="cnn",
            description="conv + batch norm + ReLU + max pool, one residual block, global pool",
            sizes={
                "tiny": {"batch": 4, "channels": 3, "image": 16, "width": 8, "classes": 10},
                "small": {"batch": 16, "channels": 3, "image": 32, "width": 32, "classes": 10},
                "large": {"batch": 128, "channels": 3, "image": 64, "width": 128, "classes": 100},
            },
            count_params=_cnn_params,
            forward_macs=_cnn_macs,
            # reductions over 9 x 128 inputs, then batch norm, at size large: 1.9e-5 measured
            parity_atol=1e-4,
            data_layer_macs=_cnn_data_macs,
        ),
        WorkloadSpec(
            name="lstm",
            description="one-layer LSTM over a sequence, last state to a classifier",
            sizes={
                "tiny": {"batch": 8, "seq": 8, "features": 16, "hidden": 32, "classes": 10},
                "small": {"batch": 32, "seq": 32, "features": 64, "hidden": 128, "classes": 10},
                "large": {"batch": 128, "seq": 128, "features": 256, "hidden": 1024, "classes": 100},
            },
            count_params=_lstm_params,
            forward_macs=_lstm_macs,
            data_layer_macs=_lstm_data_macs,
        ),
        WorkloadSpec(
            name="transformer",
            description="one post-norm encoder block (multi-head attention, feed-forward, layer norm)",
            sizes={
                "tiny": {"batch": 4, "seq": 16, "d_model": 32, "heads": 4, "ff": 64, "classes": 10},
                "small": {"batch": 16, "seq": 64, "d_model": 128, "heads": 4, "ff": 512, "classes": 10},
                "large": {"batch": 64, "seq": 256, "d_model": 512, "heads": 8, "ff": 2048, "classes": 100},
            },
            count_params=_transformer_params,
            forward_macs=_transformer_macs,
            data_layer_macs=_transformer_data_macs,
        ),
        WorkloadSpec(
            name="matmul",
            description="one (m x n) @ (n x k) matrix product, MSE against a target",
            sizes={
                "tiny": {"m": 128, "n": 128, "k": 128},
                "small": {"m": 512, "n": 512, "k": 512},
                "large": {"m": 4096, "n": 4096, "k": 4096},
            },
            count_params=_matmul_params,
            forward_macs=_matmul_macs,
            data_layer_macs=_matmul_macs,
            parity_atol=1e-4,  # a reduction over n = 4096 at size large
            tags=("micro",),
        ),
        WorkloadSpec(
            name="conv2d",
            description="one 3x3 same-padded convolution, MSE against a target",
            sizes={
                "tiny": {"batch": 4, "channels": 8, "image": 16, "filters": 8},
                "small": {"batch": 16, "channels": 32, "image": 32, "filters": 32},
                "large": {"batch": 64, "channels": 128, "image": 64, "filters": 128},
            },
            count_params=_conv2d_params,
            forward_macs=_conv2d_macs,
            data_layer_macs=_conv2d_macs,
            parity_atol=1e-4,  # a reduction over 9 x 128 inputs at size large
            tags=("micro",),
        ),
    )
}


def get_workload(name: str) -> WorkloadSpec:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise WorkloadError(
            f"unknown workload {name!r}; valid choices: {', '.join(WORKLOADS)}"
        ) from None

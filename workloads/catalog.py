"""The canonical workloads: sizes and analytic parameter and FLOP formulas, shared by
both frameworks' builders and checked against them."""

from __future__ import annotations

from .spec import DEFAULT_DTYPE, WorkloadError, WorkloadSpec


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


def _sizes(keys: str, **rows: tuple[int, ...]) -> dict[str, dict[str, int]]:
    """Each size's config from a row of values for `keys`: _sizes("m n", tiny=(2, 3))."""
    return {size: dict(zip(keys.split(), values)) for size, values in rows.items()}


WORKLOADS: dict[str, WorkloadSpec] = {spec.name: spec for spec in (
    WorkloadSpec(
        "linear", "y = w*x on x = 1..4, y = 2x; SGD lr 0.01, MSE, one epoch a step",
        _sizes("batch", tiny=(4,), small=(4,), large=(4,)), _linear_params, _linear_macs, _linear_macs,
        parity_atol=1e-6,
        notes="No bias: with one, 100 epochs at lr 0.01 leave the slow (bias) direction 26% "
              "unconverged and predict 9.68 for 5.0, not 10."),
    WorkloadSpec(
        "mlp", "ReLU multi-layer perceptron, cross-entropy",
        _sizes("batch features hidden layers classes",
               tiny=(32, 64, 128, 2, 10), small=(64, 256, 512, 3, 10), large=(512, 1024, 4096, 4, 1000)),
        _mlp_params, _mlp_macs, _mlp_data_macs),
    WorkloadSpec(
        "cnn", "conv + batch norm + ReLU + max pool, one residual block, global pool",
        _sizes("batch channels image width classes",
               tiny=(4, 3, 16, 8, 10), small=(16, 3, 32, 32, 10), large=(128, 3, 64, 128, 100)),
        _cnn_params, _cnn_macs, _cnn_data_macs,
        parity_atol=1e-4),  # reductions over 9 x 128 inputs, then batch norm, at large: 1.9e-5
    WorkloadSpec(
        "lstm", "one-layer LSTM over a sequence, last state to a classifier",
        _sizes("batch seq features hidden classes",
               tiny=(8, 8, 16, 32, 10), small=(32, 32, 64, 128, 10), large=(128, 128, 256, 1024, 100)),
        _lstm_params, _lstm_macs, _lstm_data_macs),
    WorkloadSpec(
        "transformer", "one post-norm encoder block (multi-head attention, feed-forward, layer norm)",
        _sizes("batch seq d_model heads ff classes",
               tiny=(4, 16, 32, 4, 64, 10), small=(16, 64, 128, 4, 512, 10), large=(64, 256, 512, 8, 2048, 100)),
        _transformer_params, _transformer_macs, _transformer_data_macs),
    WorkloadSpec(
        "matmul", "one (m x n) @ (n x k) matrix product, MSE against a target",
        _sizes("m n k", tiny=(128, 128, 128), small=(512, 512, 512), large=(4096, 4096, 4096)),
        _matmul_params, _matmul_macs, _matmul_macs,
        parity_atol=1e-4, tags=("micro",), batch_key="m"),  # a reduction over n = 4096 at size large
    WorkloadSpec(
        "conv2d", "one 3x3 same-padded convolution, MSE against a target",
        _sizes("batch channels image filters", tiny=(4, 8, 16, 8), small=(16, 32, 32, 32), large=(64, 128, 64, 128)),
        _conv2d_params, _conv2d_macs, _conv2d_macs,
        parity_atol=1e-4, tags=("micro",)),  # a reduction over 9 x 128 inputs at size large
)}


def get_workload(name: str) -> WorkloadSpec:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise WorkloadError(
            f"unknown workload {name!r}; valid choices: {', '.join(WORKLOADS)}"
        ) from None


def catalog_rows(names: list[str], size: str, mode: str, parity: bool = False,
                 dtype: str = DEFAULT_DTYPE) -> list[dict]:
    """What `xprof workloads` shows of each workload: parameters and FLOPs per step in
    both frameworks and, with `parity`, the numeric parity check at `dtype` (a subprocess
    per framework; ParityError when one fails)."""
    results = {}
    if parity:
        from workloads.parity import check_parity

        results = check_parity(names, size, dtype=dtype)
    rows = []
    for name in names:
        spec = get_workload(name)
        result = results.get(name)
        rows.append({
            "name": name, "description": spec.description,
            "frameworks": {framework: {"params": result.params.get(framework, spec.params(size))
                                       if result else spec.params(size),
                                       "flops_per_step": spec.flops_per_step(size, mode)}
                           for framework in ("torch", "tensorflow")},
            "parity": result and {"ok": result.ok, "dtype": result.dtype, "max_abs_diff": result.max_abs_diff,
                                  "atol": result.atol, "error": result.error,
                                  "unsupported": result.unsupported},
        })
    return rows

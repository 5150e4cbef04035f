"""The framework-free side of the workloads: sizes, formulas, choices."""

import pytest

from workloads import EXECUTIONS, SIZES, WORKLOADS, WorkloadError, get_workload
from workloads.data import make_batch
from workloads.spec import resolve_execution


def test_the_canonical_workloads_are_all_there():
    assert list(WORKLOADS) == ["linear", "mlp", "cnn", "lstm", "transformer", "matmul", "conv2d"]
    for spec in WORKLOADS.values():
        assert set(spec.sizes) == set(SIZES)


@pytest.mark.parametrize(
    "name, params",
    [
        # counted by hand from the layer shapes at size tiny
        ("linear", 1),
        ("mlp", (64 * 128 + 128) + (128 * 128 + 128) + (128 * 10 + 10)),
        ("cnn", (27 * 8 + 16) + 2 * (9 * 64 + 16) + (8 * 10 + 10)),
        ("lstm", 4 * 32 * (16 + 32) + 4 * 32 + 32 * 10 + 10),
        ("transformer", 4 * (32 * 32 + 32) + 4 * 32 + (32 * 64 + 64 + 64 * 32 + 32) + 330),
        ("matmul", 128 * 128),
        ("conv2d", 9 * 8 * 8 + 8),
    ],
)
def test_parameter_formulas_at_tiny(name, params):
    assert get_workload(name).params("tiny") == params


def test_flops_formula_counts_forward_backward_and_update():
    spec = get_workload("matmul")
    forward = 2 * 128**3
    assert spec.flops_per_step("tiny", "infer") == forward
    # the data needs no gradient: backward is the weight gradient alone
    assert spec.flops_per_step("tiny", "train") == 2 * forward + 2 * 128 * 128
    assert spec.flops_per_step("large", "infer") == 2 * 4096**3


def test_sizes_grow():
    for spec in WORKLOADS.values():
        if spec.name == "linear":
            continue
        tiny, small, large = (spec.flops_per_step(s, "train") for s in SIZES)
        assert tiny < small < large, spec.name


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: get_workload("resnet"), "unknown workload 'resnet'; valid choices: linear, mlp"),
        (lambda: get_workload("mlp").config("huge"), "unknown size 'huge'; valid choices: tiny, small, large"),
        (lambda: get_workload("mlp").flops_per_step("tiny", "serve"), "unknown mode 'serve'; valid choices: train, infer"),
        (lambda: resolve_execution("torch", "jit"), "valid choices: eager, graph, compiled"),
        (lambda: resolve_execution("jax", None), "unknown framework 'jax'"),
    ],
)
def test_unknown_choices_name_the_valid_ones(call, message):
    with pytest.raises(WorkloadError, match=message.replace("(", r"\(")):
        call()


def test_default_execution_is_each_frameworks_usual():
    assert resolve_execution("torch", None) == "eager"
    assert resolve_execution("tensorflow", None) == "graph"
    assert resolve_execution("tensorflow", "compiled") in EXECUTIONS


def test_synthetic_batches_are_deterministic_and_channels_first():
    a, b = make_batch("cnn", "tiny", 7), make_batch("cnn", "tiny", 7)
    assert a.inputs.shape == (4, 3, 16, 16) and a.inputs.dtype.name == "float32"
    assert (a.inputs == b.inputs).all() and (a.targets == b.targets).all()
    assert not (make_batch("cnn", "tiny", 8).inputs == a.inputs).all()
    linear = make_batch("linear", "tiny", 0)
    assert linear.inputs.ravel().tolist() == [1, 2, 3, 4]
    assert linear.targets.ravel().tolist() == [2, 4, 6, 8]

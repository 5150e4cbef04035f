"""--device: its names, and which device a run takes by default, with the frameworks'
answers given (the real probe and real runs are in test_precision.py)."""

import pytest

from profiler.collect.devices import gpu_index, parse_device, resolve_device
from profiler.collect.settings import RunSettings
from profiler.daemon.config import DaemonConfig
from profiler.errors import UserError


@pytest.mark.parametrize("text, stored", [("cpu", "cpu"), ("CPU", "cpu"), ("cuda", "gpu:0"), ("gpu", "gpu:0"),
                                          ("cuda:1", "gpu:1"), ("gpu:3", "gpu:3"), (" cuda:0 ", "gpu:0")])
def test_both_frameworks_names_of_a_gpu_are_stored_as_one(text, stored):
    assert parse_device(text) == stored
    assert gpu_index(stored) == (None if stored == "cpu" else int(stored[4:]))


@pytest.mark.parametrize("text", ["tpu", "cuda:x", "gpu:-1", "/GPU:0", "cuda0", ""])
def test_other_device_names_are_refused_in_one_line(text):
    with pytest.raises(UserError, match=r"--device: .* is not cpu, cuda:N or gpu:N"):
        parse_device(text)


def _never(*_):
    raise AssertionError("the frameworks were asked though nothing needed them")


def test_the_default_is_the_cpu_without_asking_the_frameworks_where_no_gpu_can_be():
    assert resolve_device(None, ["torch", "tensorflow"], probe=_never, may_exist=lambda: False) == "cpu"
    # an explicit cpu never asks either, GPU or not
    assert resolve_device("cpu", ["torch"], probe=_never, may_exist=lambda: True) == "cpu"


@pytest.mark.parametrize("seen, expected", [({"torch": 2, "tensorflow": 1}, "gpu:0"),
                                            ({"torch": 1, "tensorflow": 0}, "cpu"),
                                            ({"torch": 0, "tensorflow": 0}, "cpu"),
                                            ({"torch": 1}, "gpu:0")])
def test_the_default_is_the_first_gpu_only_where_every_framework_of_the_run_sees_one(seen, expected):
    asked = []

    def probe(frameworks):
        asked.append(frameworks)
        return {fw: seen[fw] for fw in frameworks}

    assert resolve_device(None, list(seen), probe=probe, may_exist=lambda: True) == expected
    assert asked == [list(seen)]


def test_an_explicit_gpu_must_be_seen_by_every_framework():
    def probe(frameworks):
        return {"torch": 2, "tensorflow": 1}

    assert resolve_device("cuda:1", ["torch"], probe=lambda fws: {"torch": 2}, may_exist=lambda: False) == "gpu:1"
    assert resolve_device("gpu:0", ["torch", "tensorflow"], probe=probe, may_exist=lambda: False) == "gpu:0"
    with pytest.raises(UserError, match=r"^--device cuda:1: no such GPU here \(tensorflow sees 1 GPU\)$"):
        resolve_device("cuda:1", ["torch", "tensorflow"], probe=probe, may_exist=lambda: True)


def test_settings_carry_device_and_dtype_into_every_request():
    settings = RunSettings(suite="tiny", workloads=["mlp"], dtype="bf16")
    requests = settings.requests("gpu:1")
    assert {(r.framework, r.device, r.dtype) for r in requests} == {("torch", "gpu:1", "bf16"),
                                                                    ("tensorflow", "gpu:1", "bf16")}
    assert RunSettings.default("dtype") == "fp32" and RunSettings.default("device") is None


def test_a_config_file_s_device_and_dtype_are_checked_at_start():
    DaemonConfig(every="1h", device="cuda:0", dtype="fp16").check()
    with pytest.raises(UserError, match=r"--device: 'tpu:0' is not cpu, cuda:N or gpu:N"):
        DaemonConfig(every="1h", device="tpu:0").check()
    with pytest.raises(UserError, match=r"--dtype: 'int8' is not one of fp32, bf16, fp16"):
        DaemonConfig(every="1h", dtype="int8").check()


@pytest.mark.parametrize("message, missing", [
    ("could not create a primitive descriptor for the LSTM forward propagation primitive", True),  # oneDNN, fp16
    ('"addmm_impl_cpu_" not implemented for \'Half\'', True),
    ("No registered 'MatMul' OpKernel for 'CPU' devices compatible with node", True),
    ("mat1 and mat2 shapes cannot be multiplied (4x8 and 16x2)", False),  # a bug, at any precision
    ("CUDA out of memory", False),
])
def test_only_a_framework_saying_it_has_no_kernel_makes_a_precision_not_run_here(message, missing):
    from workloads.spec import is_missing_kernel

    assert is_missing_kernel(RuntimeError(message)) is missing

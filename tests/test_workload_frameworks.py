"""Each workload run for real in torch and in TensorFlow, one framework per process."""

import pytest

from conftest import last_json_line, run_python
from workloads import WORKLOADS

# real frameworks, real profilers, or the xprof command in subprocesses
pytestmark = pytest.mark.slow

STEPS_CODE = """
import json, numpy as np
from workloads import WORKLOADS
from workloads.{module} import {cls}
out = {{}}
for name in WORKLOADS:
    for mode in ("train", "infer"):
        w = {cls}(name, "tiny", mode)
        before = [np.array(v, copy=True) for v in w.weights_snapshot()]
        for _ in range(3):
            w.step()
        w.synchronize()
        after = w.weights_snapshot()
        changed = any(not np.array_equal(a, b) for a, b in zip(before, after))
        out[f"{{name}}/{{mode}}"] = {{"params": w.params(), "changed": changed}}
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    "module, cls", [("torch_impl", "TorchWorkload"), ("tf_impl", "TensorFlowWorkload")]
)
def test_every_workload_steps_in_both_modes(module, cls):
    result = last_json_line(run_python(STEPS_CODE.format(module=module, cls=cls)))
    for name, spec in WORKLOADS.items():
        assert result[f"{name}/train"] == {"params": spec.params("tiny"), "changed": True}
        # inference must leave the weights alone
        assert result[f"{name}/infer"] == {"params": spec.params("tiny"), "changed": False}


LINEAR_CODE = """
import json
from workloads.{module} import {cls}
w = {cls}("linear", "tiny", "train")
for _ in range(100):  # 100 epochs over x = 1..4
    w.step()
import numpy as np
print(json.dumps(float(w.predict(np.array([[5.0]], dtype=np.float32)).ravel()[0])))
"""


@pytest.mark.parametrize(
    "module, cls", [("torch_impl", "TorchWorkload"), ("tf_impl", "TensorFlowWorkload")]
)
def test_linear_predicts_ten_for_five(module, cls):
    prediction = last_json_line(run_python(LINEAR_CODE.format(module=module, cls=cls)))
    assert prediction == pytest.approx(10.0, abs=0.05)


STYLES_CODE = """
import json, numpy as np
from workloads.{module} import {cls}
result = {{}}
for execution in ("eager", "graph", "compiled"):
    w = {cls}("{name}", "tiny", "train", execution)
    for _ in range(3):
        w.step()
    result[execution] = [np.asarray(v).tolist() for v in w.weights_snapshot()]
print(json.dumps(result))
"""


@pytest.mark.parametrize(
    "module, cls, name",
    [("torch_impl", "TorchWorkload", "mlp"), ("tf_impl", "TensorFlowWorkload", "cnn")],
)
def test_graph_and_compiled_steps_train_like_eager(module, cls, name):
    """Three SGD steps from the same seed end at the same weights in every style."""
    import numpy as np

    result = last_json_line(run_python(STYLES_CODE.format(module=module, cls=cls, name=name)))
    for execution in ("graph", "compiled"):
        for eager, other in zip(result["eager"], result[execution]):
            np.testing.assert_allclose(other, eager, atol=1e-5, err_msg=execution)


SYNC_CODE = """
import json
from tensorflow.python.framework import ops
from workloads.tf_impl import TensorFlowWorkload
fetched = []
numpy = ops._EagerTensorBase.numpy
def fetching(tensor):
    fetched.append(id(tensor))
    return numpy(tensor)
ops._EagerTensorBase.numpy = fetching
out = {}
for mode in ("train", "infer"):
    for execution in ("eager", "graph", "compiled"):
        w = TensorFlowWorkload("mlp", "tiny", mode, execution)
        returned = []
        inner = w._step
        w._step = lambda: returned.append(inner()) or returned[-1]
        w.step()
        fetched.clear()
        w.synchronize()
        out[f"{mode}/{execution}"] = id(returned[-1]) in fetched
print(json.dumps(out))
"""


def test_tensorflow_waits_for_the_steps_own_outputs_in_every_mode():
    """A timed step ends when its own outputs are on the host (loss or predictions),
    not when some variable the step may never touch is read: an inference step writes
    no variable, so on a GPU reading one returned before its kernels had run."""
    result = last_json_line(run_python(SYNC_CODE))
    assert result == {f"{mode}/{execution}": True for mode in ("train", "infer")
                      for execution in ("eager", "graph", "compiled")}


FLOPS_CODE = """
import json
from torch.utils.flop_counter import FlopCounterMode
from workloads.torch_impl import TorchWorkload
out = {}
for name in ("linear", "mlp", "cnn", "matmul", "conv2d"):
    for mode in ("train", "infer"):
        w = TorchWorkload(name, "tiny", mode)
        with FlopCounterMode(display=False) as counter:
            w.step()
        out[f"{name}/{mode}"] = counter.get_total_flops()
print(json.dumps(out))
"""


def test_flops_formulas_match_torchs_own_counter():
    """torch counts matmul/conv FLOPs forward and backward (not the SGD update,
    nor the fused LSTM and attention kernels, hence the five workloads here)."""
    from workloads import get_workload

    counted = last_json_line(run_python(FLOPS_CODE))
    for key, flops in counted.items():
        name, mode = key.split("/")
        spec = get_workload(name)
        update = 2 * spec.params("tiny") if mode == "train" else 0
        assert spec.flops_per_step("tiny", mode) - update == flops, key

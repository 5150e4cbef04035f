"""The canonical workloads in TensorFlow: Keras layers and a `tf.function` step.

Import this module only in a process that runs TensorFlow workloads.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from .catalog import get_workload  # noqa: E402
from .data import CLASSIFIERS, make_batch  # noqa: E402
from .spec import DEFAULT_DTYPE, DEFAULT_SEED, DTYPES, MODES, check_choice, resolve_execution  # noqa: E402

LEARNING_RATE = 0.01
# torch's defaults, so that both frameworks normalize and track statistics alike
# (Keras defaults to epsilon 1e-3 and momentum 0.99).
NORM_EPSILON = 1e-5
BN_MOMENTUM = 0.9

IMAGE_WORKLOADS = ("cnn", "conv2d")
# Keras's mixed-precision policies: variables in fp32, computations in the low precision.
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def _batch_norm(name):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=NORM_EPSILON, name=name)


def _conv(filters, name, use_bias=False):
    return layers.Conv2D(filters, 3, padding="same", use_bias=use_bias, name=name)


def build_model(name: str, size: str, dtype: str = DEFAULT_DTYPE) -> keras.Model:
    """The Keras model of a workload; its layers take the mixed-precision policy of
    `dtype`, as a Keras user sets it (globally, while the model is built)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[check_choice("dtype", dtype, DTYPES)])
    try:
        return _build_model(name, size)
    finally:
        keras.config.set_dtype_policy(previous)


def _build_model(name: str, size: str) -> keras.Model:
    """Every layer named as workloads/layers.py names it."""
    c = get_workload(name).config(size)
    if name == "linear":
        inputs = keras.Input((1,))
        outputs = layers.Dense(1, use_bias=False, name="linear")(inputs)
    elif name == "mlp":
        inputs = keras.Input((c["features"],))
        x = inputs
        for i in range(c["layers"]):
            x = layers.Dense(c["hidden"], activation="relu", name=f"dense{i}")(x)
        outputs = layers.Dense(c["classes"], name="head")(x)
    elif name == "cnn":
        inputs = keras.Input((c["image"], c["image"], c["channels"]))
        x = _conv(c["width"], "stem_conv")(inputs)
        x = layers.ReLU(name="stem_relu")(_batch_norm("stem_bn")(x))
        x = layers.MaxPooling2D(2, name="stem_pool")(x)
        y = layers.ReLU(name="block_relu1")(_batch_norm("block_bn1")(_conv(c["width"], "block_conv1")(x)))
        y = _batch_norm("block_bn2")(_conv(c["width"], "block_conv2")(y))
        x = layers.ReLU(name="block_relu2")(layers.Add(name="block_add")([x, y]))
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        outputs = layers.Dense(c["classes"], name="head")(x)
    elif name == "lstm":
        inputs = keras.Input((c["seq"], c["features"]))
        x = layers.LSTM(c["hidden"], name="lstm")(inputs)
        outputs = layers.Dense(c["classes"], name="head")(x)
    elif name == "transformer":
        d, heads = c["d_model"], c["heads"]
        inputs = keras.Input((c["seq"], d))
        attention = layers.MultiHeadAttention(heads, d // heads, name="attention")
        attended = layers.Add(name="residual1")([inputs, attention(inputs, inputs)])
        x = layers.LayerNormalization(epsilon=NORM_EPSILON, name="norm1")(attended)
        ff = layers.Dense(c["ff"], activation="relu", name="ff1")(x)
        ff = layers.Dense(d, name="ff2")(ff)
        x = layers.LayerNormalization(epsilon=NORM_EPSILON, name="norm2")(layers.Add(name="residual2")([x, ff]))
        x = layers.GlobalAveragePooling1D(name="pool")(x)
        outputs = layers.Dense(c["classes"], name="head")(x)
    elif name == "matmul":
        inputs = keras.Input((c["n"],))
        outputs = layers.Dense(c["k"], use_bias=False, name="matmul")(inputs)
    elif name == "conv2d":
        inputs = keras.Input((c["image"], c["image"], c["channels"]))
        outputs = _conv(c["filters"], "conv", use_bias=True)(inputs)
    else:
        raise AssertionError(f"no TensorFlow model for workload {name!r}")
    return keras.Model(inputs, outputs, name=name)


def to_tf_layout(name: str, array: np.ndarray) -> np.ndarray:
    """Canonical (channels-first) arrays to what the Keras model takes (NHWC)."""
    if name in IMAGE_WORKLOADS and array.ndim == 4:
        return np.ascontiguousarray(array.transpose(0, 2, 3, 1))
    return array


def from_tf_layout(name: str, array: np.ndarray) -> np.ndarray:
    if name in IMAGE_WORKLOADS and array.ndim == 4:
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2))
    return array


def _key(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _dense(state, prefix):
    # torch (out, in) -> Keras (in, out)
    weights = [state[_key(prefix, "weight")].T]
    if _key(prefix, "bias") in state:
        weights.append(state[_key(prefix, "bias")])
    return weights


def _conv_weights(state, prefix):
    # torch (out, in, kh, kw) -> Keras (kh, kw, in, out)
    weights = [state[_key(prefix, "weight")].transpose(2, 3, 1, 0)]
    if _key(prefix, "bias") in state:
        weights.append(state[_key(prefix, "bias")])
    return weights


def _bn(state, prefix):
    return [state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]


def _attention(state, prefix, heads):
    d = state[f"{prefix}.out_proj.weight"].shape[0]
    head_dim = d // heads
    in_w = np.split(state[f"{prefix}.in_proj_weight"], 3)
    in_b = np.split(state[f"{prefix}.in_proj_bias"], 3)
    weights = []
    for w, b in zip(in_w, in_b):  # query, key, value: (d, heads, head_dim)
        weights += [w.T.reshape(d, heads, head_dim), b.reshape(heads, head_dim)]
    out_w = state[f"{prefix}.out_proj.weight"].T.reshape(heads, head_dim, d)
    return weights + [out_w, state[f"{prefix}.out_proj.bias"]]


def torch_weight_map(name: str, size: str, state: dict) -> dict[str, list[np.ndarray]]:
    """Keras layer name -> its weights, converted from a torch state dict."""
    c = get_workload(name).config(size)
    if name == "linear":
        return {"linear": _dense(state, "0")}
    if name == "matmul":
        return {"matmul": _dense(state, "0")}
    if name == "conv2d":
        return {"conv": _conv_weights(state, "0")}
    if name == "mlp":
        mapping = {f"dense{i}": _dense(state, str(2 * i)) for i in range(c["layers"])}
        mapping["head"] = _dense(state, str(2 * c["layers"]))
        return mapping
    if name == "cnn":
        return {
            "stem_conv": _conv_weights(state, "stem.0"),
            "stem_bn": _bn(state, "stem.1"),
            "block_conv1": _conv_weights(state, "block.conv1"),
            "block_bn1": _bn(state, "block.bn1"),
            "block_conv2": _conv_weights(state, "block.conv2"),
            "block_bn2": _bn(state, "block.bn2"),
            "head": _dense(state, "head"),
        }
    if name == "lstm":
        bias = state["lstm.bias_ih_l0"] + state["lstm.bias_hh_l0"]
        return {
            "lstm": [state["lstm.weight_ih_l0"].T, state["lstm.weight_hh_l0"].T, bias],
            "head": _dense(state, "head"),
        }
    if name == "transformer":
        return {
            "attention": _attention(state, "attention", c["heads"]),
            "norm1": [state["norm1.weight"], state["norm1.bias"]],
            "ff1": _dense(state, "feed_forward.0"),
            "ff2": _dense(state, "feed_forward.2"),
            "norm2": [state["norm2.weight"], state["norm2.bias"]],
            "head": _dense(state, "head"),
        }
    raise AssertionError(f"no weight conversion for workload {name!r}")


class TensorFlowWorkload:
    """One workload, ready to run steps: Keras model, optimizer and a batch. At bf16 or
    fp16 the model takes Keras's mixed-precision policy; fp16 training scales its loss
    (LossScaleOptimizer)."""

    framework = "tensorflow"

    def __init__(self, name, size, mode="train", execution=None, seed=DEFAULT_SEED,
                 forward_passes=1, dtype=DEFAULT_DTYPE, batch_size=None):
        check_choice("mode", mode, MODES)
        self.dtype = check_choice("dtype", dtype, DTYPES)
        # forward_passes > 1: the slowed-down variant, as in TorchWorkload
        self.forward_passes = forward_passes
        self.name, self.size, self.mode = name, size, mode
        self.execution = resolve_execution("tensorflow", execution)
        keras.utils.set_random_seed(seed)
        self.model = build_model(name, size, dtype)
        batch = make_batch(name, size, seed, batch_size)
        self.inputs = tf.constant(to_tf_layout(name, batch.inputs))
        self.targets = tf.constant(to_tf_layout(name, batch.targets))
        if name in CLASSIFIERS:
            self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        else:
            self.loss_fn = keras.losses.MeanSquaredError()
        self.optimizer = keras.optimizers.SGD(learning_rate=LEARNING_RATE)
        if dtype == "fp16" and mode == "train":
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        self.optimizer.build(self.model.trainable_variables)
        self._last_outputs = None  # what the last step returned, for synchronize
        self._gpus = bool(tf.config.list_logical_devices("GPU"))
        step = self._train_step if mode == "train" else self._infer_step
        if self.execution == "eager":
            self._step = step
        else:
            self._step = tf.function(step, jit_compile=self.execution == "compiled")

    def _outputs(self, training):
        outputs = self.model(self.inputs, training=training)
        for _ in range(self.forward_passes - 1):
            outputs = outputs + self.model(self.inputs, training=training)
        return outputs if self.forward_passes == 1 else outputs / self.forward_passes

    def _train_step(self):
        with tf.GradientTape() as tape:
            loss = self.loss_fn(self.targets, self._outputs(training=True))
            scaled = self.optimizer.scale_loss(loss)  # the loss itself but at fp16
        variables = self.model.trainable_variables
        # a LossScaleOptimizer unscales the gradients, and skips a step whose are not finite
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return loss

    def _infer_step(self):
        return self._outputs(training=False)

    def step(self) -> None:
        self._last_outputs = self._step()

    def synchronize(self) -> None:
        """Wait for the last step's device work: its outputs (the loss in training, the
        predictions in inference) are fetched to the host, and on a GPU every op queued
        there is waited for too (a training step's updates come after its loss)."""
        if self._last_outputs is not None:
            tf.nest.map_structure(lambda tensor: tensor.numpy(), self._last_outputs)
        if self._gpus:
            tf.test.experimental.sync_devices()

    def predict(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        """The model's outputs for `inputs` as fp32 numpy (channels first), in inference
        or training mode, at the workload's dtype."""
        outputs = self.model(tf.constant(to_tf_layout(self.name, inputs)), training=training)
        return from_tf_layout(self.name, tf.cast(outputs, tf.float32).numpy())

    def params(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.model.trainable_variables))

    def weights_snapshot(self) -> list[np.ndarray]:
        """Copies of the trainable variables, in model order."""
        return [v.numpy().copy() for v in self.model.trainable_variables]

    def load_torch_weights(self, state: dict[str, np.ndarray]) -> None:
        for layer_name, weights in torch_weight_map(self.name, self.size, state).items():
            self.model.get_layer(layer_name).set_weights(weights)

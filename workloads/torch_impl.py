"""The canonical workloads in PyTorch: torch.nn modules trained with torch.optim.

Import this module only in a process that runs torch workloads; it imports torch.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from .data import CLASSIFIERS, make_batch
from .spec import DEFAULT_DTYPE, DEFAULT_SEED, DTYPES, MODES, check_choice, resolve_execution
from .catalog import get_workload
from .layers import LAYER_SCOPE

LEARNING_RATE = 0.01
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def layer(name: str):
    """The scope of one of the workload's layers (workloads/layers.py names them) in a
    profiled step: a record_function the trace reader attributes the ops inside to. Off
    the profiler it is nothing, so that timed steps pay for no annotation."""
    if torch.autograd._profiler_enabled():
        return torch.profiler.record_function(LAYER_SCOPE + name)
    return contextlib.nullcontext()


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)

    def forward(self, x):
        y = x
        for name, step in (("block_conv1", self.conv1), ("block_bn1", self.bn1), ("block_relu1", torch.relu),
                           ("block_conv2", self.conv2), ("block_bn2", self.bn2)):
            with layer(name):
                y = step(y)
        with layer("block_add"):
            y = x + y
        with layer("block_relu2"):
            return torch.relu(y)


class SmallResNet(nn.Module):
    def __init__(self, channels: int, width: int, classes: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.block = ResidualBlock(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        for name, step in zip(("stem_conv", "stem_bn", "stem_relu", "stem_pool"), self.stem):
            with layer(name):
                x = step(x)
        x = self.block(x)
        with layer("pool"):
            x = x.mean(dim=(2, 3))
        with layer("head"):
            return self.head(x)


class LastStateLSTM(nn.Module):
    def __init__(self, features: int, hidden: int, classes: int):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        # TensorFlow's LSTM has one bias per gate; torch adds b_ih and b_hh, which
        # only ever appear summed. Freezing b_hh at zero keeps the two models equal.
        with torch.no_grad():
            self.lstm.bias_hh_l0.zero_()
        self.lstm.bias_hh_l0.requires_grad_(False)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        with layer("lstm"):
            _, (h, _) = self.lstm(x)
        with layer("head"):
            return self.head(h[-1])


class EncoderClassifier(nn.Module):
    def __init__(self, d_model: int, heads: int, ff: int, classes: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, ff), nn.ReLU(), nn.Linear(ff, d_model)
        )
        self.norm2 = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x):
        with layer("attention"):
            attended, _ = self.attention(x, x, x, need_weights=False)
        with layer("residual1"):
            attended = x + attended
        with layer("norm1"):
            x = self.norm1(attended)
        with layer("ff1"):
            ff = self.feed_forward[1](self.feed_forward[0](x))
        with layer("ff2"):
            ff = self.feed_forward[2](ff)
        with layer("residual2"):
            x = x + ff
        with layer("norm2"):
            x = self.norm2(x)
        with layer("pool"):
            x = x.mean(dim=1)
        with layer("head"):
            return self.head(x)


class ScopedSequential(nn.Sequential):
    """Modules applied in turn, each under the scope of the layer it is part of."""

    def __init__(self, names: list[str], *modules: nn.Module):
        super().__init__(*modules)
        self.layer_names = names

    def forward(self, x):
        for name, module in zip(self.layer_names, self):
            with layer(name):
                x = module(x)
        return x


def build_model(name: str, size: str) -> nn.Module:
    """The torch model of a workload, each layer in the scope workloads/layers.py names."""
    c = get_workload(name).config(size)
    if name == "linear":
        return ScopedSequential(["linear"], nn.Linear(1, 1, bias=False))
    if name == "mlp":
        layers = [nn.Linear(c["features"], c["hidden"]), nn.ReLU()]
        for _ in range(c["layers"] - 1):
            layers += [nn.Linear(c["hidden"], c["hidden"]), nn.ReLU()]
        layers.append(nn.Linear(c["hidden"], c["classes"]))
        # a Keras Dense layer applies its ReLU itself: both modules are one layer
        names = [f"dense{i // 2}" for i in range(2 * c["layers"])] + ["head"]
        return ScopedSequential(names, *layers)
    if name == "cnn":
        return SmallResNet(c["channels"], c["width"], c["classes"])
    if name == "lstm":
        return LastStateLSTM(c["features"], c["hidden"], c["classes"])
    if name == "transformer":
        return EncoderClassifier(c["d_model"], c["heads"], c["ff"], c["classes"])
    if name == "matmul":
        return ScopedSequential(["matmul"], nn.Linear(c["n"], c["k"], bias=False))
    if name == "conv2d":
        return ScopedSequential(["conv"], nn.Conv2d(c["channels"], c["filters"], 3, padding=1))
    raise AssertionError(f"no torch model for workload {name!r}")


def count_trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _compile(model: nn.Module, execution: str) -> nn.Module:
    if execution == "eager":
        return model
    # "graph": the graph Dynamo/AOTAutograd capture, run by eager kernels;
    # "compiled": the same graph code-generated by Inductor.
    backend = "aot_eager" if execution == "graph" else "inductor"
    return torch.compile(model, backend=backend)


class TorchWorkload:
    """One workload, ready to run steps: model, optimizer and a batch on a device. At
    bf16 or fp16 the weights stay fp32 and the steps run under autocast, as torch's users
    run mixed precision; fp16 training scales its loss (GradScaler)."""

    framework = "torch"

    def __init__(self, name, size, mode="train", execution=None, seed=DEFAULT_SEED, device=None,
                 forward_passes=1, dtype=DEFAULT_DTYPE, batch_size=None):
        check_choice("mode", mode, MODES)
        self.dtype = check_choice("dtype", dtype, DTYPES)
        # forward_passes > 1 is a slowed-down variant (the model runs k times a step,
        # its outputs averaged): how tests make a regression that is known to be real.
        self.forward_passes = forward_passes
        self.name, self.size, self.mode = name, size, mode
        self.execution = resolve_execution("torch", execution)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch.manual_seed(seed)
        self.model = build_model(name, size).to(self.device)
        batch = make_batch(name, size, seed, batch_size)
        self.inputs = torch.from_numpy(batch.inputs).to(self.device)
        self.targets = torch.from_numpy(batch.targets).to(self.device)
        self.loss_fn = nn.CrossEntropyLoss() if name in CLASSIFIERS else nn.MSELoss()
        self.optimizer = torch.optim.SGD(
            [p for p in self.model.parameters() if p.requires_grad], lr=LEARNING_RATE
        )
        self.model.train(mode == "train")
        self.runnable = _compile(self.model, self.execution)
        # scales the loss so that small fp16 gradients do not flush to zero; a no-op otherwise
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=dtype == "fp16" and mode == "train")
        self._step = self._train_step if mode == "train" else self._infer_step

    def _precision(self):
        """The context a step's forward pass runs in: autocast at bf16 and fp16."""
        if self.dtype == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.dtype])

    def _outputs(self):
        outputs = self.runnable(self.inputs)
        for _ in range(self.forward_passes - 1):
            outputs = outputs + self.runnable(self.inputs)
        return outputs if self.forward_passes == 1 else outputs / self.forward_passes

    def _train_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with self._precision():
            outputs = self._outputs()
            with layer("loss"):
                loss = self.loss_fn(outputs, self.targets)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _infer_step(self) -> None:
        with torch.inference_mode(), self._precision():
            self._outputs()

    def step(self) -> None:
        self._step()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def predict(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        """The model's outputs for `inputs` as fp32 numpy, in inference mode (or in training
        mode, where batch norm uses the batch's statistics), at the workload's dtype."""
        self.model.train(training)
        try:
            with torch.no_grad(), self._precision():
                outputs = self.model(torch.from_numpy(inputs).to(self.device))
            return outputs.float().cpu().numpy()
        finally:
            self.model.train(self.mode == "train")

    def params(self) -> int:
        return count_trainable_params(self.model)

    def weights_snapshot(self) -> list[np.ndarray]:
        """Copies of the trainable parameters, in model order."""
        return [p.detach().cpu().numpy().copy() for p in self.model.parameters() if p.requires_grad]

    def weights(self) -> dict[str, np.ndarray]:
        """Parameters and buffers (batch-norm statistics) as numpy, by torch name."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

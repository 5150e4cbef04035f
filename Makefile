# `make run` and `make test` are the two commands a new user runs (see README.md).
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# torch on PyPI resolves to a multi-GB CUDA build. On a machine without an NVIDIA
# GPU, pin the CPU build first (pip finds it on local disk here); with a GPU, let
# pip resolve the CUDA build through setup.cfg's requirement.
HAS_NVIDIA_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH_CPU_PIN  := torch==2.13.0

.PHONY: install run test gpu-check clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
ifneq ($(HAS_NVIDIA_GPU),yes)
	$(BIN)/pip install --quiet $(TORCH_CPU_PIN)
endif
	$(BIN)/pip install --quiet -e '.[test]'
ifeq ($(HAS_NVIDIA_GPU),yes)
	# TensorFlow's pip package sees a GPU only with its CUDA libraries beside it
	$(BIN)/pip install --quiet 'tensorflow[and-cuda]'
endif
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/xprof workloads --parity --size small
	$(BIN)/xprof run --suite small
	$(BIN)/xprof report

test: $(STAMP)
	$(BIN)/python -m pytest

# On a host with an NVIDIA GPU: the tiny suite on it, and what must hold there (docs/gpu.md).
gpu-check: $(STAMP)
	$(BIN)/python checks/gpu_check.py

clean:
	rm -rf $(VENV)

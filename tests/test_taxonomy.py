"""The taxonomy of where time goes: every name in the shared GPU traces and in a recorded CPU
run of the tiny suite lands in a category, apart from short literal lists of names nobody could
place; the name -> category cases are tab-separated tables in tests/data/taxonomy/."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, fixture_path

from analysis.taxonomy import (
    CATEGORIES, KERNEL_RULES, OP_RULES, RUNTIME_RULES, SCOPE_RULES, classify, classify_event,
)
from profiler.traces.events import CPU_OP, KERNEL, MEMCPY, MEMSET, RUNTIME, TraceEvent
from profiler.traces.kineto import read_kineto
from profiler.traces.xplane import read_xplane

TABLES = Path(__file__).parent / "data" / "taxonomy"
CLASSIFIED_KINDS = (KERNEL, MEMCPY, MEMSET, CPU_OP)
KINETO_FIXTURES = (
    "a100_alexnet_train.json.gz",
    "a100_cupti_counters.json.gz",
    "cpu_only.json.gz",
    "mi250_minitoy_train.json.gz",
)
XPLANE_FIXTURES = ("gpu_jax_fused_attention.xplane.pb", "mi300x_jax_conv.xplane.pb")


def table(name: str) -> list[tuple[str, ...]]:
    """The rows of tests/data/taxonomy/<name>.tsv: cells split on tabs, the header line,
    blank lines and lines starting with '#' left out."""
    text = (TABLES / f"{name}.tsv").read_text(encoding="utf-8")
    header, *rows = [tuple(line.split("\t")) for line in text.splitlines()
                     if line and not line.startswith("#")]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"{name}.tsv: {len(header)} tab-separated cells expected, got {row!r}")
    return rows


def first_column(rows):
    """The test ids of a table's cases: its first column, the name."""
    return [row[0] for row in rows]


def test_the_categories():
    assert CATEGORIES == (
        "matmul", "convolution", "elementwise", "reduction", "normalization", "softmax/loss",
        "optimizer", "data movement", "communication", "other",
    )


def test_every_rule_names_a_category():
    rules = OP_RULES + SCOPE_RULES + KERNEL_RULES + RUNTIME_RULES
    assert {category for category, _ in rules} == set(CATEGORIES) - {"other"}


# --- the shared GPU traces ---------------------------------------------------------------


@pytest.fixture(scope="module")
def kineto_events():
    return [e for name in KINETO_FIXTURES for e in read_kineto(fixture_path("kineto", name)).events
            if e.kind in CLASSIFIED_KINDS]


@pytest.fixture(scope="module")
def xplane_events():
    return [e for name in XPLANE_FIXTURES for e in read_xplane(fixture_path("xplane", name)).events
            if e.kind in CLASSIFIED_KINDS]


def left_in_other(events, with_op=True):
    return {e.name for e in events if classify(e.name, e.kind, e.op if with_op else None) == "other"}


# Dispatcher bookkeeping that yields no tensor: a type check (the fixtures' one
# aten::result_type runs inside Optimizer.step#, which makes it the optimizer's).
KINETO_OTHER = {"aten::_has_compatible_shallow_copy_type"}


def test_kineto_names_are_classified(kineto_events):
    names = {e.name for e in kineto_events}
    # the readers found ops and kernels alike, not a handful
    assert len(names) > 20
    assert len({e.name for e in kineto_events if e.kind == KERNEL}) > 10
    assert {classify_event(e) for e in kineto_events} <= set(CATEGORIES)
    # the list of unplaceable names holds only names the traces hold, and all of those
    assert KINETO_OTHER <= names
    assert left_in_other(kineto_events) == KINETO_OTHER
    optimizer_ops = {e.name for e in kineto_events if (e.op or "").startswith("Optimizer.step#")}
    assert "aten::result_type" in optimizer_ops
    # the kernels' own names suffice too, as in a trace whose ops are unknown
    assert left_in_other([e for e in kineto_events if e.kind == KERNEL], with_op=False) == set()


def test_xplane_names_are_classified(xplane_events):
    assert len({e.name for e in xplane_events}) > 10
    assert {e.kind for e in xplane_events} == {KERNEL}
    assert left_in_other(xplane_events) == set()
    assert left_in_other(xplane_events, with_op=False) == set()


def fixture_kernel(events, prefix, op):
    return next(e for e in events if e.name.startswith(prefix) and e.op == op)


# an empty op cell is a kernel with no op
FIXTURE_KERNELS = [(prefix, op or None, by_op, by_name)
                   for prefix, op, by_op, by_name in table("fixture_kernels")]


@pytest.mark.parametrize("prefix, op, by_op, by_name", FIXTURE_KERNELS, ids=first_column(FIXTURE_KERNELS))
def test_fixture_kernels_by_op_then_by_name(kineto_events, xplane_events, prefix, op, by_op, by_name):
    event = fixture_kernel(kineto_events + xplane_events, prefix, op)
    assert classify(event.name, KERNEL, event.op) == by_op
    assert classify(event.name, KERNEL, None) == by_name


# --- a real CPU run -----------------------------------------------------------------------
# cpu_run_names.tsv: every distinct name a CPU run of the tiny suite stored (its header says
# which run and versions), one (framework, name) row each. All are cpu_op rows.


def stored_op(name):
    """The `op` the readers store beside a name: the type after ':' of a TF node name
    ("scope/MatMul:_MklMatMul"), else the name itself (torch, and TF eager ops)."""
    _, colon, op_type = name.rpartition(":")
    return op_type if colon and "::" not in name and " " not in name else name


CPU_RUN = table("cpu_run_names")
CPU_RUN_NAMES = [name for _, name in CPU_RUN]
# Bookkeeping that yields no tensor: a backend query (asked by torch's convolution and
# RNN paths alike) and a shape query in TF's LSTM gradient loop.
CPU_RUN_OTHER = {
    "aten::cudnn_is_acceptable",
    "gradient_tape/lstm_1/lstm_1/while/VariableShape:VariableShape",
}


def test_cpu_run_names_are_classified():
    # both frameworks' names, each name once, and not a handful
    assert len(set(CPU_RUN_NAMES)) == len(CPU_RUN_NAMES)
    for framework in ("torch", "tensorflow"):
        assert len([name for fw, name in CPU_RUN if fw == framework]) > 20, framework
    assert {framework for framework, _ in CPU_RUN} == {"torch", "tensorflow"}
    # the list of unplaceable names holds only names the run stored, and all of those
    assert CPU_RUN_OTHER <= set(CPU_RUN_NAMES)
    left = {name for name in CPU_RUN_NAMES if classify(name, CPU_OP, stored_op(name)) == "other"}
    assert left == CPU_RUN_OTHER


CPU_RUN_SPOT_CHECKS = table("cpu_run_spot_checks")


@pytest.mark.parametrize("name, category", CPU_RUN_SPOT_CHECKS, ids=first_column(CPU_RUN_SPOT_CHECKS))
def test_cpu_run_spot_checks(name, category):
    assert name in CPU_RUN_NAMES
    assert classify(name, CPU_OP, stored_op(name)) == category


# --- names the traces above do not hold ------------------------------------------------

FRAMEWORK_OPS = table("framework_ops")
KERNEL_NAMES = table("kernel_names")
TENSORFLOW_SCOPES = table("tensorflow_scopes")
RUNTIME_CALLS = table("runtime_calls")


@pytest.mark.parametrize("op, category", FRAMEWORK_OPS, ids=first_column(FRAMEWORK_OPS))
def test_framework_ops(op, category):
    assert classify(op, CPU_OP, op) == category


@pytest.mark.parametrize("kernel, category", KERNEL_NAMES, ids=first_column(KERNEL_NAMES))
def test_kernel_names(kernel, category):
    assert classify(kernel, KERNEL) == category


@pytest.mark.parametrize("name, category", TENSORFLOW_SCOPES, ids=first_column(TENSORFLOW_SCOPES))
def test_tensorflow_scopes(name, category):
    assert classify(name, CPU_OP, stored_op(name)) == category
    # a GPU kernel whose tf_op is that node: the op decides, the kernel name would not
    assert classify("void Eigen::internal::EigenMetaKernel<float>", KERNEL, name) == category


def test_unknown_names_are_other():
    assert classify("fusion.123", KERNEL) == "other"  # which ops XLA fused, it does not say
    assert classify("my_custom_kernel<float>", KERNEL) == "other"
    assert classify("MyCustomOp", CPU_OP, "MyCustomOp") == "other"
    assert classify("", CPU_OP) == "other"
    # an unknown op does not hide what the kernel name says
    assert classify("volta_sgemm_128x64_nn", KERNEL, "CompiledFunction") == "matmul"


@pytest.mark.parametrize("name", ["Memcpy HtoD (Pageable -> Device)", "Memcpy DtoD (Device -> Device)",
                                  "Memset (Device)", "anything at all"])
def test_copies_and_fills_are_data_movement_whatever_their_name(name):
    assert classify(name, MEMCPY, "aten::addmm") == "data movement"
    assert classify(name, MEMSET) == "data movement"


@pytest.mark.parametrize("call, category", RUNTIME_CALLS, ids=first_column(RUNTIME_CALLS))
def test_runtime_calls_by_their_own_name(call, category):
    # launch overhead is not the launched op's time: the op does not count here
    assert classify(call, RUNTIME, "aten::addmm") == category


def test_classify_event_reads_name_kind_and_op():
    event = TraceEvent("ampere_gcgemm_64x64_nt", KERNEL, 0, 10, "cuda:0", "7", op="aten::cudnn_convolution")
    assert classify_event(event) == "convolution"


@pytest.mark.slow  # starts an interpreter
def test_importing_the_taxonomy_loads_no_framework():
    code = ("import sys, analysis.taxonomy; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tensorflow', 'pynvml'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

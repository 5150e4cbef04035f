"""Lines of code of each workload's model and training step, in each framework, counted
from the workloads' own source (parsed, never imported)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import workloads

SOURCES = {"torch": ("torch_impl.py", "build_model", "TorchWorkload"),
           "tensorflow": ("tf_impl.py", "_build_model", "TensorFlowWorkload")}
TRAIN_STEP = "_train_step"


def code_lines(workload: str, framework: str) -> dict[str, int]:
    """{"model": lines, "step": lines}: the lines of the model builder's branch for
    `workload` and of the module's classes and functions it uses (transitively), and of
    the training step; blank lines, comments and docstrings are not counted."""
    source, tree, definitions = _module(framework)
    file_name, builder, workload_class = SOURCES[framework]
    branch = _branch(definitions[builder], workload)
    if branch is None:
        raise LookupError(f"{file_name}: {builder} has no branch for workload {workload!r}")
    model = set().union(*(_lines(source, statement) for statement in branch))
    for name in sorted(_used(branch, definitions)):
        model |= _lines(source, definitions[name])
    step = _method(definitions[workload_class], TRAIN_STEP)
    return {"model": len(model), "step": len(_lines(source, step))}


@cache
def _module(framework: str):
    path = Path(workloads.__file__).with_name(SOURCES[framework][0])
    source = path.read_text()
    tree = ast.parse(source)
    definitions = {node.name: node for node in tree.body
                   if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    return source.splitlines(), tree, definitions


def _branch(builder: ast.FunctionDef, workload: str) -> list[ast.stmt] | None:
    """The body of the `if name == "<workload>":` (or elif) in the builder."""
    for node in ast.walk(builder):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            test = node.test
            if (isinstance(test.left, ast.Name) and test.left.id == "name" and isinstance(test.ops[0], ast.Eq)
                    and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == workload):
                return node.body
    return None


def _used(nodes, definitions: dict, seen: set | None = None) -> set[str]:
    """The module-level classes and functions `nodes` name, and those they name."""
    seen = set() if seen is None else seen
    for node in nodes:
        for name in (n.id for n in ast.walk(node) if isinstance(n, ast.Name)):
            if name in definitions and name not in seen:
                seen.add(name)
                _used([definitions[name]], definitions, seen)
    return seen


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise LookupError(f"{cls.name} has no method {name}")


def _lines(source: list[str], node: ast.AST) -> set[int]:
    """The physical lines of `node` that hold code: not blank, not only a comment, not a
    docstring."""
    docstrings = set()
    for inner in ast.walk(node):
        body = getattr(inner, "body", None)
        if isinstance(inner, (ast.FunctionDef, ast.ClassDef)) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            docstrings |= set(range(body[0].lineno, body[0].end_lineno + 1))
    return {number for number in range(node.lineno, node.end_lineno + 1)
            if number not in docstrings and source[number - 1].strip()
            and not source[number - 1].strip().startswith("#")}

"""The layout as a specification: each package imports only what it may, SQL that writes
the store lives in the store package, and modules stay small with short, true openings."""

import ast
import re
from pathlib import Path

import pytest

from conftest import REPO_ROOT

PACKAGES = ("profiler", "analysis", "views", "workloads")
MODULES = sorted(p for package in PACKAGES for p in (REPO_ROOT / package).rglob("*.py")) + [REPO_ROOT / "cli.py"]
FRAMEWORKS = ("torch", "tensorflow", "keras", "pynvml")
# The store's own tables: only the store package writes them.
STORE_WRITE = re.compile(r"\b(INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+(runs|steps|events|kernels|"
                         r"memory_events|samples|artifacts|meta)\b", re.IGNORECASE)


def _name(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("path", [p for p in MODULES if _name(p).startswith("profiler/")], ids=_name)
def test_profiler_never_imports_analysis_or_views(path):
    assert not {m for m in _imports(path) if _top(m) in ("analysis", "views", "cli")}


@pytest.mark.parametrize("path", [p for p in MODULES if _name(p).startswith(("analysis/", "views/"))], ids=_name)
def test_analysis_and_views_never_import_a_framework(path):
    assert not {m for m in _imports(path) if _top(m) in FRAMEWORKS + ("cli",)}
    if _name(path).startswith("analysis/"):
        assert not {m for m in _imports(path) if _top(m) == "views"}


@pytest.mark.parametrize("path", [p for p in MODULES if _name(p).startswith("profiler/store/")], ids=_name)
def test_the_store_imports_only_traces_of_the_rest(path):
    ours = {m for m in _imports(path) if _top(m) in PACKAGES}
    assert all(m.startswith(("profiler.store", "profiler.traces", "profiler.errors", "profiler.processes"))
               for m in ours), ours


@pytest.mark.parametrize("path", [p for p in MODULES if not _name(p).startswith("profiler/store/")], ids=_name)
def test_only_the_store_package_writes_the_store(path):
    assert not STORE_WRITE.findall(path.read_text())


def test_the_cli_is_thin():
    """Under 500 lines, and no SQL, threads, process control or table building of its own."""
    text = (REPO_ROOT / "cli.py").read_text()
    assert len(text.splitlines()) < 500
    assert not _imports(REPO_ROOT / "cli.py") & {"sqlite3", "threading", "subprocess", "signal", "os", "rich"}
    assert not {m for m in _imports(REPO_ROOT / "cli.py") if m.startswith("rich.")}
    assert not re.search(r"\bSELECT\b|\.execute\(|\bTable\(", text)


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_modules_are_small_and_open_with_a_short_docstring(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 500
    doc = ast.get_docstring(ast.parse(text))
    assert doc, "no opening docstring"
    assert len(doc.strip().splitlines()) <= 3

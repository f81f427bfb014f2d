"""The import graph, read afresh: no cycles, and every import points down the layers declared in pyproject.toml.

The contract is import-linter's ``layers`` contract from ``[tool.importlinter]``. grimp walks ``mtl/`` only, so the
modules of ``tasks/`` (installed as ``mtl.tasks``) are added to its graph here, with every import they make.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib

import pytest

from conftest import REPO

grimp = pytest.importorskip("grimp")
pytest.importorskip("importlinter")


def _module_name(path, base: str) -> str:
    parts = list(path.relative_to(REPO / base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["mtl.tasks" if base == "tasks" else "mtl", *parts])


def _imports(path, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(imported name, line) for every import statement, also inside functions and TYPE_CHECKING blocks."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                prefix = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found += [(f"{prefix}.{alias.name}", node.lineno) for alias in node.names]
    return found


def mtl_graph():
    """grimp's graph of mtl/, plus the modules of tasks/ and their imports."""
    graph = grimp.build_graph("mtl", cache_dir=None)
    tasks = {_module_name(path, "tasks"): path for path in sorted((REPO / "tasks").rglob("*.py"))}
    for name in tasks:
        graph.add_module(name)
    for name, path in tasks.items():
        for imported, line in _imports(path, name, path.name == "__init__.py"):
            while imported and imported not in graph.modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                graph.add_import(importer=name, imported=imported, line_number=line, line_contents="")
    return graph


def contract_options() -> dict:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = config["contracts"]
    return contract


def test_imports_point_down_the_declared_layers():
    from importlinter.contracts.layers import LayersContract

    options = contract_options()
    contract = LayersContract(name=options["name"], session_options={"root_packages": ["mtl"]},
                              contract_options={"layers": options["layers"]})
    graph = mtl_graph()
    assert {"mtl.tasks.text_sentiment", "mtl.registry", "mtl.config.sections"} <= graph.modules
    check = contract.check(graph, verbose=False)
    assert check.kept, f"imports against the layers: {check.metadata}"


def test_no_import_cycles_among_mtl_modules():
    graph = mtl_graph()
    modules = {m for m in graph.modules if m == "mtl" or m.startswith("mtl.")}
    for module in sorted(modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and imported in modules:
                chain = graph.find_shortest_chain(importer=imported, imported=module)
                assert chain is None, f"import cycle: {module} -> {' -> '.join(chain)}"


def test_the_layers_contract_catches_an_upward_import():
    """The check is live: a data module importing the registry breaks it."""
    from importlinter.contracts.layers import LayersContract

    options = contract_options()
    contract = LayersContract(name=options["name"], session_options={"root_packages": ["mtl"]},
                              contract_options={"layers": options["layers"]})
    graph = mtl_graph()
    graph.add_import(importer="mtl.data.labelled", imported="mtl.registry", line_number=1, line_contents="")
    assert not contract.check(graph, verbose=False).kept


def test_lint_imports_keeps_the_contract_over_mtl():
    """import-linter's own command keeps the same contract over mtl/ (exit 0: every contract kept). It runs in a
    subprocess: its logging.config call disables every logger that exists in the calling process."""
    script = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "1 kept, 0 broken" in done.stdout, done.stdout + done.stderr

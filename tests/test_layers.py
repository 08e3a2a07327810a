"""Imports flow one way: every `import` in `src/` (module level or inside a function) is read from the
source, and the test fails on a circle between files, a circle between packages, or a package
importing one on its own floor or above.

The floors, lowest first (docs/extending.md draws them): a package may import only packages on lower
floors. `settings` is the lowest and imports nothing of ours; `config` (validation across groups)
sits under the entry points only.
"""

from __future__ import annotations

import ast
import graphlib
from collections import defaultdict
from pathlib import Path

import pytest

from src.paths import PROJECT_ROOT

SRC = PROJECT_ROOT / "src"
FLOORS = [
    {"settings", "paths", "foreach", "amp", "background"},  # leaves: settings, paths, tensor helpers, a writer thread
    {"models"},  # plain nn.Module builders
    {"training"},  # the LightningModule, regularizers, data modules
    {"tracking"},  # MLflow: store, runs, liveness and the reaper, sweeps
    {"monitor"},  # gradient health: statistics, instruments, detectors, forensics
    {"lifecycle", "report"},  # a run from start to end; sweep reports
    {"config"},  # validation of a whole composed config, across groups
    {"train", "reap"},  # the entry points
]
FLOOR = {package: level for level, floor in enumerate(FLOORS) for package in floor}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name an import statement of this file loads: `import a.b` gives a.b; `from a import b`
    gives a.b (a submodule, or a name defined in a, resolved by `import_graph`); relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the project's modules it imports: a name is its own module when it is one, else the
    module that defines it. The root package `src` is left out: it only registers the config
    resolvers, and every import of a submodule runs it."""
    files = {module_name(path): path for path in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for name in imported_names(path, module):
            while name not in files and "." in name:
                name = name.rpartition(".")[0]
            if name in files and name not in (module, "src"):
                targets.add(name)
        graph[module] = targets
    return graph


def package_of(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        packages[package_of(module)].update(package_of(t) for t in targets if package_of(t) != package_of(module))
    return packages


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        return err.args[1]
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_no_file_imports_another_that_imports_it_back(graph: dict[str, set[str]]) -> None:
    found = cycle(graph)
    assert found is None, f"import circle between files: {' -> '.join(found)}"


def test_no_circle_between_packages(graph: dict[str, set[str]]) -> None:
    found = cycle(package_graph(graph))
    assert found is None, f"import circle between packages: {' -> '.join(found)}"


def test_every_package_has_a_floor(graph: dict[str, set[str]]) -> None:
    assert set(package_graph(graph)) | {package_of(m) for m in graph} - {"src"} <= set(FLOOR) | {"src"}


def test_no_package_imports_one_on_its_floor_or_above(graph: dict[str, set[str]]) -> None:
    upward = sorted(
        f"{module} imports {target} ({package_of(target)} is not below {package_of(module)})"
        for module, targets in graph.items() if module != "src"
        for target in targets
        if package_of(target) != package_of(module) and FLOOR[package_of(target)] >= FLOOR[package_of(module)]
    )
    assert not upward, "imports against the floors:\n" + "\n".join(upward)


def test_settings_import_nothing_of_the_project(graph: dict[str, set[str]]) -> None:
    reached = {t for m, targets in graph.items() if package_of(m) == "settings" for t in targets}
    assert {package_of(t) for t in reached} <= {"settings"}, reached


def test_the_walk_sees_a_circle_and_an_upward_import() -> None:
    """The checks themselves can fail: a circle and an upward import, built by hand, are caught."""
    assert cycle({"src.a.x": {"src.b.y"}, "src.b.y": {"src.a.x"}}) is not None
    assert cycle({"src.a.x": {"src.b.y"}, "src.b.y": set()}) is None
    assert package_graph({"src.models.lenet": {"src.config.checks"}}) == {"models": {"config"}}
    assert FLOOR["config"] > FLOOR["models"]  # so that edge is upward, and the floor test names it


def test_imports_inside_functions_count(tmp_path: Path) -> None:
    source = tmp_path / "late.py"
    source.write_text("def f():\n    from src.config.validation import validate\n    from . import sibling\n")
    names = imported_names(source, "src.models.late")
    assert names == {"src.config.validation.validate", "src.models.sibling"}

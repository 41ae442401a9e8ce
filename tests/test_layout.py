"""The house rules of the source tree, checked from its text (docs/DESIGN.md, "Layout").

No import cycles, no private name imported from another module, an import tree at most
ten modules deep, no module over 500 lines. Imports are read with ``ast`` wherever they
stand (inside functions too: a late import is still a dependency), so a new cycle fails
here, naming the modules, before anyone has to find it at run time. The one exception:
imports under ``if TYPE_CHECKING:`` never run, so they are not part of the import tree.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("duplexbench", "servers", "clients", "locustfiles")
MAX_DEPTH = 10
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    """Every module of the tree by name: Python sources, and C sources (setup.py builds
    each into a module of the same name; they import nothing of the tree)."""
    found = {}
    for package in PACKAGES:
        for path in [*(ROOT / package).rglob("*.py"), *(ROOT / package).rglob("*.c")]:
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of the tree that ``import name`` loads (its nearest known ancestor)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every import of the tree's modules."""
    if path.suffix == ".c":
        return []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block)
                   for stmt in block.body for n in ast.walk(stmt)}  # not its else branch
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name)
                if target:
                    found.append((target, "", node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if full in MODULES:  # a module imported by name
                    found.append((full, "", node.lineno))
                elif (target := _resolve(source)) is not None:
                    found.append((target, alias.name, node.lineno))
    return found


GRAPH = {m: {t for t, _, _ in _imports(m, p) if t != m} for m, p in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return components


def test_the_checker_sees_the_tree():
    """Guard against a checker that passes because it read nothing."""
    assert "duplexbench.runner.session" in MODULES and "servers.hub" in MODULES
    assert "clients.reader" in MODULES and "clients.readloop" in GRAPH["clients.reader"]
    assert "duplexbench.runner.point_runner" in GRAPH["duplexbench.runner.session"]


def test_no_import_cycles():
    assert _cycles() == []


def _longest_chain() -> tuple[str, ...]:
    """The longest chain of imports (a cycle is cut where it closes)."""
    memo: dict[str, tuple[str, ...]] = {}

    def chain(module: str, visiting: frozenset) -> tuple[str, ...]:
        if module in memo:
            return memo[module]
        longest: tuple[str, ...] = ()
        for dep in GRAPH[module]:
            if dep not in visiting:
                candidate = chain(dep, visiting | {dep})
                if len(candidate) > len(longest):
                    longest = candidate
        memo[module] = (module, *longest)
        return memo[module]

    return max((chain(m, frozenset({m})) for m in sorted(GRAPH)), key=len)


def test_import_tree_at_most_ten_deep():
    deepest = _longest_chain()
    assert len(deepest) <= MAX_DEPTH, " -> ".join(deepest)


def test_no_private_name_imported_across_modules():
    offenders = [f"{path.relative_to(ROOT)}:{line}: {name} from {target}"
                 for module, path in MODULES.items()
                 for target, name, line in _imports(module, path)
                 if name.startswith("_") and not name.startswith("__") and target != module]
    assert offenders == []


def test_modules_at_most_500_lines():
    long = {str(path.relative_to(ROOT)): n for path in MODULES.values()
            if (n := path.read_text(encoding="utf-8").count("\n")) > MAX_LINES}
    assert long == {}

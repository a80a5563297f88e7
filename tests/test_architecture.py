"""The architecture, checked: SQL lives only in ``gastown/ledger/``, and imports point one way.

Layers (docs/architecture.md), a module may import only from its own layer or below:

    3 cli        gastown/cli, the console script
    2 roles      roles, refinery, github, views, server, demo (and the demo agent), doctor, rigs, costs, context
    1 drivers    ledger, tmux, git, runtimes, hosts, _internal, the exec trampoline, wake, logtail
    0 models     errors, states, names, config, town, screen, prompts, triggers, safetext

Imports under ``if TYPE_CHECKING:`` are for type checkers only and are not counted.
Only ``cli`` and ``views`` may import typer or rich.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gastown"

LAYERS: dict[str, int] = {
    **dict.fromkeys(("cli", "_entry", "__main__"), 3),
    **dict.fromkeys(("roles", "refinery", "github", "views", "server", "demo", "demo_agent", "doctor", "rigs", "costs", "context"), 2),
    **dict.fromkeys(("ledger", "tmux", "git", "runtimes", "hosts", "_internal", "_exec", "wake", "logtail"), 1),
    **dict.fromkeys(("errors", "states", "names", "config", "town", "screen", "prompts", "triggers", "safetext"), 0),
}
LAYER_NAMES = {3: "cli", 2: "roles", 1: "drivers", 0: "models"}

# Places outside the ledger allowed to speak SQL, each with the reason.
SQL_ALLOWED = {
    "gastown/runtimes/usage.py": "reads opencode's own SQLite database (its usage records), not the ledger",
}
SQL_RE = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|WITH)\s+\S|^\s*BEGIN\s+(IMMEDIATE|DEFERRED|EXCLUSIVE|TRANSACTION)\b")
SQL_CALLS = {"execute", "executemany", "executescript"}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE.parent).as_posix(), path


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "gastown":
        return None
    if len(parts) == 1:
        return 0
    return LAYERS.get(parts[1], -1)


def module_name(rel: str) -> str:
    name = rel[: -len(".py")].replace("/", ".")
    return name.removesuffix(".__init__")


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def sql_sites(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Lines that speak SQL: SQL text in a string, a DB-API execute call, ``import sqlite3``
    (a type-only import under ``TYPE_CHECKING`` does not count)."""
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_RE.match(node.value):
            yield node.lineno, f"SQL text {node.value.strip()[:40]!r}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
            yield node.lineno, f".{node.func.attr}(...)"
        elif isinstance(node, ast.Import) and any(a.name == "sqlite3" for a in node.names):
            yield node.lineno, "import sqlite3"
        elif isinstance(node, ast.ImportFrom) and node.module == "sqlite3":
            yield node.lineno, "from sqlite3 import ..."


def sql_outside_ledger(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        if rel.startswith("gastown/ledger/") or rel in SQL_ALLOWED:
            continue
        found += [f"{rel}:{line}: {what}" for line, what in sql_sites(ast.parse(path.read_text()))]
    return found


def test_every_sql_statement_lives_in_the_ledger() -> None:
    assert sql_outside_ledger() == [], "SQL belongs in gastown/ledger/ (one module per record kind)"


def test_the_sql_check_catches_a_stray_execute_in_a_role(tmp_path: Path) -> None:
    fake = tmp_path / "gastown" / "roles"
    fake.mkdir(parents=True)
    (fake / "sneaky.py").write_text(
        "def count(ctx):\n"
        "    return ctx.ledger.connection().execute('SELECT COUNT(*) FROM hooks').fetchone()[0]\n"
    )
    found = sql_outside_ledger(tmp_path / "gastown")
    assert found == [
        "gastown/roles/sneaky.py:2: .execute(...)",
        "gastown/roles/sneaky.py:2: SQL text 'SELECT COUNT(*) FROM hooks'",
    ]


def test_every_module_has_a_layer() -> None:
    unknown = [rel for rel, _ in modules() if layer_of(module_name(rel)) == -1]
    assert unknown == [], "give these modules a layer in tests/test_architecture.py and docs/architecture.md"


@pytest.mark.parametrize("rel,path", list(modules()), ids=[rel for rel, _ in modules()])
def test_imports_point_down_the_layers(rel: str, path: Path) -> None:
    me = layer_of(module_name(rel))
    assert me is not None and me >= 0
    tree = ast.parse(path.read_text())
    wrong = []
    for line, name in imported(tree):
        other = layer_of(name)
        if other is not None and other > me:
            wrong.append(f"{rel}:{line}: a {LAYER_NAMES[me]} module imports {name} ({LAYER_NAMES.get(other, '?')})")
        top = name.split(".")[0]
        if top in ("typer", "rich") and me != 3 and not rel.startswith("gastown/views/"):
            wrong.append(f"{rel}:{line}: only cli and views may import {top}")
    assert wrong == []

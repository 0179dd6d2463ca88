"""The package's shape holds: imports go down only (docs/architecture.md).

Read from the source with ``ast``, so the rules are checked without importing anything.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "src" / "coinpurse"
ENTRY_POINTS = {"coinpurse.app", "coinpurse.cli", "coinpurse.worker", "coinpurse.__main__"}
# Modules where SQL may be written: the repositories, the ledger's store and reads, core.
SQL_NAMES = {"select", "insert", "update", "delete", "text", "func", "and_", "or_",
             "literal", "case", "exists", "union_all"}
WEB_MODULES = ("fastapi", "starlette", "coinpurse.http", "coinpurse.state")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        yield _module_name(path), path


def _imports(path: Path, module: str) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, names imported from it, line) for every import, lazy ones too."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            names = [a.name for a in node.names]
            yield base, names, node.lineno
            for name in names:  # "from coinpurse.wallets import routes" imports a module
                yield f"{base}.{name}", [], node.lineno


def _domain(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else None


def _violations() -> Iterator[str]:
    for module, path in _modules():
        kind = module.rsplit(".", 1)[-1]
        for target, names, line in _imports(path, module):
            where = f"{module}:{line} imports {target}"
            if module.startswith("coinpurse.core") and target.startswith("coinpurse") \
                    and not target.startswith("coinpurse.core"):
                yield f"{where}: core imports nothing of Coinpurse's"
            if module.startswith("coinpurse.ledger") and target.startswith("coinpurse.") \
                    and not target.startswith(("coinpurse.core", "coinpurse.ledger")):
                yield f"{where}: the ledger imports only core"
            if target.endswith(".routes") and target.startswith("coinpurse.") \
                    and module != "coinpurse.app":
                yield f"{where}: only app.py mounts routes"
            if target in ENTRY_POINTS and module not in ENTRY_POINTS:
                yield f"{where}: nothing imports the entry points"
            if kind in ("service", "repository", "tables", "errors", "settings") \
                    and not module.startswith("coinpurse.http") \
                    and target.startswith(WEB_MODULES):
                yield f"{where}: {kind} modules know nothing of HTTP"
            if kind in ("service", "routes", "jobs") and target == "sqlalchemy" \
                    and set(names) & SQL_NAMES:
                yield f"{where}: SQL belongs in repository.py ({sorted(set(names) & SQL_NAMES)})"


def test_imports_go_down_only() -> None:
    assert list(_violations()) == []


@pytest.mark.parametrize("source", [
    "from coinpurse.wallets import routes",
    "from coinpurse.gifts.routes import router",
])
def test_the_check_catches_a_routes_import(tmp_path: Path, source: str) -> None:
    """The rule itself can fail: a service importing a routes module is reported."""
    fake = tmp_path / "coinpurse" / "gifts" / "service.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(source + "\n")
    found = [t for t, _n, _l in _imports(fake, "coinpurse.gifts.service")]
    assert any(t.endswith(".routes") for t in found)


def test_every_domain_has_the_same_files() -> None:
    """Each domain folder with routes has its schemas and service beside them."""
    for routes in ROOT.glob("*/routes.py"):
        folder = routes.parent
        missing = [f for f in ("schemas.py", "service.py") if not (folder / f).exists()]
        assert missing == [], f"{folder.name} lacks {missing}"

"""`tenancy` is the core every domain app builds on, so it imports none of them: each module's
imports are read from its source (lazy imports inside functions and management commands
included). Its migrations may keep what they have."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings

DOMAIN_APPS = ("growth", "onboarding", "advanced")
TENANCY = Path(settings.BASE_DIR) / "tenancy"


def _modules() -> list[Path]:
    return sorted(path for path in TENANCY.rglob("*.py") if "migrations" not in path.relative_to(TENANCY).parts)


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import statement, and of every `import_module("...")` /
    `__import__("...")` call with a literal name."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def _domain_imports(source: str) -> list[tuple[int, str]]:
    return [(line, module) for line, module in _imported(ast.parse(source)) if module.split(".")[0] in DOMAIN_APPS]


def test_the_scan_sees_every_kind_of_import() -> None:
    source = (
        "import growth.models\n"
        "from onboarding import services\n"
        "def f():\n"
        "    from advanced.models import CeoBriefing\n"
        "    importlib.import_module('growth.demo')\n"
        "from .models import Shop\n"
        "import growthhacks\n"
    )
    assert _domain_imports(source) == [
        (1, "growth.models"),
        (2, "onboarding"),
        (4, "advanced.models"),
        (5, "growth.demo"),
    ]


def test_tenancy_has_modules_to_scan() -> None:
    assert len(_modules()) > 20


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(TENANCY)))
def test_tenancy_imports_no_domain_app(path: Path) -> None:
    assert _domain_imports(path.read_text(encoding="utf-8")) == []

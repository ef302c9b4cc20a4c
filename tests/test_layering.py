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


BACKOFFICE = Path(settings.BASE_DIR) / "backoffice"
# Modules that are the domain's API layer; a service (or anything a service imports) must not
# need them: errors are domain errors (tenancy.errors), inputs are plain column lists.
API_PACKAGES = ("api",)


def _backoffice_modules() -> list[Path]:
    return sorted(BACKOFFICE.rglob("*.py"))


@pytest.mark.parametrize("path", _backoffice_modules(), ids=lambda path: str(path.relative_to(BACKOFFICE)))
def test_the_back_office_building_blocks_import_no_domain_app(path: Path) -> None:
    assert _domain_imports(path.read_text(encoding="utf-8")) == []


def _service_modules() -> list[Path]:
    base = Path(settings.BASE_DIR)
    found: list[Path] = []
    for app in ("tenancy", *DOMAIN_APPS):
        found += [base / app / "services.py", base / app / "ingest.py"]
        found += sorted((base / app / "services").rglob("*.py"))
        # A feature package inside an app (advanced/experiments/, ...) has its services too.
        found += sorted((base / app).glob("*/services.py"))
        found += sorted((base / app).glob("*/services/**/*.py"))
    return [path for path in found if path.exists()]


def test_the_service_scan_sees_every_feature_of_advanced() -> None:
    scanned = {path.relative_to(settings.BASE_DIR).parts[:2] for path in _service_modules()}
    assert {("advanced", feature) for feature in ADVANCED_FEATURES} <= scanned


@pytest.mark.parametrize("path", _service_modules(), ids=lambda path: str(path.relative_to(settings.BASE_DIR)))
def test_services_import_neither_an_api_module_nor_drf(path: Path) -> None:
    imported = [module for _, module in _imported(ast.parse(path.read_text(encoding="utf-8")))]
    relative_api = [
        node.module
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.level > 0 and (node.module or "").split(".")[0] in API_PACKAGES
    ]
    assert [m for m in imported if m.split(".")[0] == "rest_framework" or ".api" in f".{m}"] == []
    assert relative_api == []


ADVANCED = Path(settings.BASE_DIR) / "advanced"
# advanced/ is three features, each a package with its models, queries, services, API and admin
# (shared/DESIGN.md, "Features live together"). advanced/models.py, admin.py, demo.py and
# api/urls.py only gather them where Django and tenancy look.
ADVANCED_FEATURES = ("experiments", "knowledge", "briefings")
# What one feature may read of another: its selectors, as apps read each other's.
FEATURE_READS = ("selectors",)


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    """The module an import statement of `path` names, relative imports resolved."""
    if node.level == 0:
        return node.module or ""
    # The package a module's relative imports start from: its folder (also for __init__.py).
    package = list(path.relative_to(settings.BASE_DIR).parent.parts)
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _feature_imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            # `from .. import knowledge` names the feature in the imported names.
            found += [(node.lineno, module)] + [(node.lineno, f"{module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def _feature_modules() -> list[Path]:
    return sorted(path for feature in ADVANCED_FEATURES for path in (ADVANCED / feature).rglob("*.py"))


def test_the_feature_scan_resolves_relative_imports() -> None:
    path = ADVANCED / "briefings" / "services" / "figures.py"
    source = "from ...experiments.selectors import concluded_experiments\nfrom ..models import CeoBriefing\n"
    tree = ast.parse(source)
    modules = [_absolute(path, node) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert modules == ["advanced.experiments.selectors", "advanced.briefings.models"]


@pytest.mark.parametrize("path", _feature_modules(), ids=lambda path: str(path.relative_to(ADVANCED)))
def test_a_feature_of_advanced_reads_another_only_through_its_selectors(path: Path) -> None:
    own = path.relative_to(ADVANCED).parts[0]
    crossing = []
    for line, module in _feature_imports(path):
        parts = module.split(".")
        if parts[0] != "advanced" or len(parts) < 2 or parts[1] not in ADVANCED_FEATURES or parts[1] == own:
            continue
        if len(parts) >= 3 and parts[2] in FEATURE_READS:
            continue
        crossing.append((line, module))
    assert crossing == []

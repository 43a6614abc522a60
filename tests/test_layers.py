"""Imports go one way: routes -> services -> stores -> config/errors (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def our_imports(path: Path) -> set[str]:
    """Names of this project's modules that `path` imports (service.x / workers.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = node.module or ""
                names = [base] if base else [alias.name for alias in node.names]
                found.update(f"service.{name}".split(".")[1] for name in names)
            elif node.module and node.module.split(".")[0] in ("service", "workers"):
                parts = node.module.split(".")
                found.add(parts[1] if len(parts) > 1 else parts[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in ("service", "workers"):
                    found.add(parts[1] if len(parts) > 1 else parts[0])
    return found


def module(name: str) -> Path:
    return ROOT / "service" / f"{name}.py"


@pytest.mark.parametrize("name, allowed", [
    ("errors", set()),
    ("config", set()),
    ("identity", set()),
    ("tokens", {"config", "errors"}),
    ("passwords", {"config", "identity"}),
    ("users", {"errors", "identity"}),
    ("redis_wire", set()),
    ("sqlite_pool", set()),
    ("redis_store", {"redis_wire"}),
    ("mail", {"config", "sealed_links"}),
    ("sealed_links", set()),
    ("schemas", {"config", "errors", "identity", "passwords"}),
    ("session_store", {"redis_wire"}),
    ("devices", set()),
    ("limits", {"config", "errors", "identity", "redis_store"}),
    ("alerts", {"config", "mail", "redis_store"}),
    ("services", {"alerts", "config", "devices", "errors", "identity", "limits", "passwords",
                  "redis_store", "schemas", "session_store", "tokens", "users"}),
    ("recovery", {"config", "errors", "limits", "mail", "passwords", "redis_store", "schemas",
                  "services", "session_store", "users"}),
    ("web", {"errors", "schemas"}),
    ("server", {"config", "web"}),
    ("deletion", {"errors", "passwords", "session_store", "users"}),
    ("admin", {"deletion", "errors", "identity", "redis_store", "schemas", "services",
               "session_store", "users"}),
    ("admin_routes", {"admin", "redis_store", "routes", "web"}),
    # redis_store only for the CachedUser type the service hands back.
    ("routes", {"schemas", "deletion", "errors", "recovery", "redis_store", "services", "tokens",
                "web"}),
])
def test_module_imports_only_what_its_layer_allows(name: str, allowed: set[str]) -> None:
    extra = our_imports(module(name)) - allowed
    assert not extra, f"service/{name}.py imports {sorted(extra)}"


def test_worker_imports_only_config_and_pure_helpers() -> None:
    """Settings, the address rule, the shared secret and the link key: no app, no stores."""
    allowed = {"config", "identity", "jwt_secret", "sealed_links"}
    assert our_imports(ROOT / "workers" / "mailer.py") <= allowed


def test_nothing_below_the_app_imports_it() -> None:
    for path in (ROOT / "service").glob("*.py"):
        if path.stem not in ("app", "cli"):
            assert "app" not in our_imports(path), path.name

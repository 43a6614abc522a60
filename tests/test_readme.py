"""The README is the project's own reference (with the served OpenAPI document): it stands
alone, names every endpoint and every setting, and sends nobody to files a clone lacks."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from starlette.routing import Route

from service.config import Settings
from service.http.admin import ADMIN_ROUTES
from service.http.routes import AUTH_PREFIX, ROUTES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_the_readme_sends_nobody_outside_the_repository() -> None:
    assert "../shared" not in README and "API.md" not in README


def test_the_readme_api_tables_name_every_endpoint_and_method() -> None:
    rows = [line for line in README.splitlines() if line.startswith("| `")]
    missing = []
    for route in [*ROUTES, *ADMIN_ROUTES]:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        if not route.path.startswith(AUTH_PREFIX):
            continue
        path = re.sub(r"\{\w+\}", "{id}", route.path[len(AUTH_PREFIX):])
        listed = " ".join(r.split("|")[2] for r in rows if r.startswith(f"| `{path}` |"))
        methods = sorted((route.methods or set()) - {"HEAD"})
        if not all(m in listed for m in methods):
            missing.append((path, methods))
    assert not missing, missing


def test_the_readme_names_every_setting() -> None:
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for section in dataclasses.fields(Settings):
        if section.name == "data_dir":
            continue
        row = next((line for line in table.splitlines()
                    if line.startswith(f"| `{section.name}` |")), None)
        assert row is not None, section.name
        for key in dataclasses.fields(getattr(Settings(), section.name)):
            assert f"`{key.name}`" in row, f"[{section.name}] {key.name}"


def test_the_readme_layout_names_every_module() -> None:
    """The Layout tree stays true: every module and package of service/ and workers/ is in it
    (a package's own modules may be summed up under its name, as openapi/'s are)."""
    layout = README.split("## Layout", 1)[1].split("\n## ", 1)[0]
    summed_up = {"openapi"}
    missing = []
    for path in sorted([*(ROOT / "service").rglob("*.py"), *(ROOT / "workers").glob("*.py")]):
        parts = path.relative_to(ROOT).parts
        if path.name == "__init__.py" or "migrations" in parts or summed_up & set(parts[:-1]):
            continue
        if path.name not in layout:
            missing.append("/".join(parts))
    for package in (ROOT / "service").iterdir():
        if (package / "__init__.py").exists() and f"{package.name}/" not in layout:
            missing.append(f"service/{package.name}/")
    assert not missing, f"README's Layout does not name {missing}"

"""The JS client's own checks, run by its npm scripts: unit tests (node --test), the typed
interface (tsc --noEmit) and the size budget (esbuild, gzip -9, at most 6144 bytes)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from npm_client import INSTALL_LIMIT, RUN_LIMIT, ensure_installed, npm

SIZE_BUDGET = 6144  # bytes, minified and gzipped (-9): the 6 KB

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("client-js")]


@pytest.fixture(scope="module")
def installed() -> Iterator[None]:
    ensure_installed()
    yield


def assert_script_passes(script: list[str]) -> str:
    done = npm(*script)
    output = f"{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, f"npm {' '.join(script)} failed:\n{output}"
    return output


@pytest.mark.timeout(INSTALL_LIMIT + RUN_LIMIT)
def test_unit_tests_pass(installed: None) -> None:
    output = assert_script_passes(["test"])
    # node --test's summary (TAP "# pass N" or spec "ℹ pass N"): tests did run, none failed
    passed = re.search(r"^\W*pass (\d+)$", output, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0, output
    assert re.search(r"^\W*fail 0$", output, re.MULTILINE), output


@pytest.mark.timeout(INSTALL_LIMIT + RUN_LIMIT)
def test_type_declarations_check(installed: None) -> None:
    assert_script_passes(["run", "typecheck"])


@pytest.mark.timeout(INSTALL_LIMIT + RUN_LIMIT)
def test_core_fits_the_size_budget(installed: None) -> None:
    output = assert_script_passes(["run", "size"])
    measured = re.search(r"(\d+) minified\+gzip -9", output)
    assert measured, f"the size script said no size:\n{output}"
    print(f"client core: {measured.group(1)} bytes minified and gzipped")
    assert int(measured.group(1)) <= SIZE_BUDGET, output

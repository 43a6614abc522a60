"""Every test has a time limit (pyproject.toml, pytest-timeout): a hang fails by name."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HANGS = '''
import asyncio

def test_waits_forever_on_a_future():
    async def main():
        await asyncio.get_running_loop().create_future()  # never resolved
    asyncio.run(main())

def test_after_it_still_runs():
    assert True
'''


def test_a_hanging_test_fails_by_name_with_its_stack_and_the_run_goes_on(
        tmp_path: Path) -> None:
    (tmp_path / "test_hangs.py").write_text(HANGS)
    # The project's own settings (-c pyproject.toml), with the limit shortened to 2 s.
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"),
         "--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-o", "timeout=2",
         str(tmp_path / "test_hangs.py")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    out = done.stdout
    assert done.returncode == 1, out
    assert "FAILED test_hangs.py::test_waits_forever_on_a_future" in out
    assert "Timeout" in out
    assert "create_future()" in out  # the stack shows where it waited
    assert "1 failed, 1 passed" in out


def test_the_suite_sets_a_limit_for_every_test() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert 0 < options["timeout"] <= 300
    assert options["timeout_method"] == "signal"  # fails the one test; the run goes on

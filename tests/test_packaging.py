"""The built package carries everything the code reads at run time: a wheel (what a
non-editable `pip install .` installs) holds every file of service/ and workers/, and the
service, imported from that wheel alone, migrates a database and serves its docs page."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from support import free_port

ROOT = Path(__file__).resolve().parent.parent
# The newest migration: the installed wheel must carry it.
HEAD = max(p.name.split("_")[0] for p in
           (ROOT / "service" / "store" / "migrations" / "versions").glob("[0-9]*_*.py"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # From a copy of the tree, so no earlier build/ directory can lend files the build lacks.
    source = out / "source"
    shutil.copytree(ROOT, source, ignore=left_out)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--wheel-dir", str(out), str(source)],
                   check=True, capture_output=True, timeout=240)
    (built,) = out.glob("authsvc-*.whl")
    return built


def left_out(directory: str, names: list[str]) -> set[str]:
    """Build output, caches and, at the top, the checkout's own data directory (sockets)."""
    skipped = {".git", ".venv", "build", "__pycache__", ".pytest_cache", "node_modules",
               "test-artifacts"}
    if Path(directory) == ROOT:
        skipped |= {"data", "bench"}
    return {name for name in names if name in skipped or name.endswith(".egg-info")}


def tracked_package_files() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "service", "workers"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    return set(listed)


@pytest.mark.timeout(300)
def test_the_wheel_holds_every_file_of_the_packages(wheel: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files to compare with")
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if not name.startswith("authsvc-")}
    missing = tracked_package_files() - packed
    assert not missing, f"files the wheel leaves out: {sorted(missing)}"


@pytest.mark.timeout(300)
def test_the_service_installed_from_the_wheel_migrates_and_serves_its_docs(
        wheel: Path, tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    """Imported from the unpacked wheel, in a directory outside the checkout: `migrate` finds
    its migrations, `serve` its docs page and assets, the JS client (clients/js, linked into
    the package), the hosted pages, and the OpenAPI document its settings."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    port = free_port()
    env.update({"PYTHONPATH": str(site), "AUTH_REDIS_URL": redis_url,
                "AUTH_REDIS_PREFIX": redis_prefix, "AUTH_SERVER_PORT": str(port),
                "AUTH_WORKER_QUEUE": f"{redis_prefix}mail", "AUTH_UI_ENABLED": "true"})
    where = subprocess.run([sys.executable, "-c", "import service; print(service.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout
    migrated = subprocess.run([sys.executable, "-m", "service.cli", "migrate"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)
    assert migrated.returncode == 0 and f"revision {HEAD}" in migrated.stderr, migrated.stderr
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve"],
                                   cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}/api/v1/"
            page = get_when_listening(base + "docs", process)
            assert page.status_code == 200 and "docs/assets/docs.js" in page.text
            for name in ("docs.js", "docs.css"):
                assert httpx.get(f"{base}docs/assets/{name}").status_code == 200, name
            assert httpx.get(base + "openapi.json").json()["openapi"].startswith("3.1")
            client = httpx.get(base + "client/authsvc.js")
            assert client.content == (ROOT / "clients/js/src/authsvc.js").read_bytes()
            signin = httpx.get(base.removesuffix("api/v1/") + "auth/signin")
            assert signin.status_code == 200 and "/auth/assets/" in signin.text
        finally:
            process.terminate()
            process.wait(timeout=30)
    output = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in output, output


def get_when_listening(url: str, process: subprocess.Popen[bytes]) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"serve exited with {process.returncode}"
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("serve did not start listening")

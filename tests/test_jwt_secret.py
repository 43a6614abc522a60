"""jwt_secret.py: the configured secret, else one generated once, private, shared by processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.store import jwt_secret

ROOT = Path(__file__).resolve().parent.parent
CONFIGURED = "configured-secret-" + "c" * 32
# Each child waits for the same instant, then resolves: the processes race for real.
CHILD = ("import sys, time; from pathlib import Path; "
         "from service.store.jwt_secret import resolve; "
         "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
         "print(resolve('', Path(sys.argv[1])))")


def test_generated_secret_is_private_long_and_stable(tmp_path: Path) -> None:
    """With nothing configured a ≥ 32-byte secret is written with mode 0600 and reused."""
    data_dir = tmp_path / "data"
    secret = jwt_secret.resolve("", data_dir)
    path = data_dir / jwt_secret.FILE_NAME
    assert len(secret.encode()) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == secret
    assert jwt_secret.resolve("", data_dir) == secret
    assert [p.name for p in data_dir.iterdir()] == [jwt_secret.FILE_NAME]


def test_generated_secret_is_private_even_under_a_permissive_umask(tmp_path: Path) -> None:
    """The file is 0600 whatever the umask says."""
    old = os.umask(0)
    try:
        jwt_secret.resolve("", tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / jwt_secret.FILE_NAME).stat().st_mode) == 0o600


def test_each_data_directory_gets_its_own_random_secret(tmp_path: Path) -> None:
    """Two fresh directories never share a generated secret."""
    assert jwt_secret.resolve("", tmp_path / "a") != jwt_secret.resolve("", tmp_path / "b")


def test_configured_secret_wins_and_writes_nothing(tmp_path: Path) -> None:
    """A configured secret is returned as is; no directory or file is created."""
    data_dir = tmp_path / "data"
    assert jwt_secret.resolve(CONFIGURED, data_dir) == CONFIGURED
    assert not data_dir.exists()


def test_configured_secret_wins_over_a_stored_one(tmp_path: Path) -> None:
    """A stored secret is ignored (and left alone) once one is configured."""
    stored = jwt_secret.resolve("", tmp_path)
    assert jwt_secret.resolve(CONFIGURED, tmp_path) == CONFIGURED
    assert (tmp_path / jwt_secret.FILE_NAME).read_text().strip() == stored


def test_eight_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    """Eight processes resolving at the same instant all get the one stored secret."""
    data_dir = tmp_path / "data"
    start = str(time.time() + 1.0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir), start], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(8)]
    outputs = [child.communicate(timeout=60) for child in children]
    assert [c.returncode for c in children] == [0] * 8, outputs
    secrets = {out.strip() for out, _ in outputs}
    assert secrets == {(data_dir / jwt_secret.FILE_NAME).read_text().strip()}, outputs
    assert [p.name for p in data_dir.iterdir()] == [jwt_secret.FILE_NAME]  # no temp files left


@pytest.mark.parametrize("stored", ["", "short-secret", "x" * 31])
def test_a_stored_secret_shorter_than_32_bytes_is_refused(tmp_path: Path, stored: str) -> None:
    """A stored secret under 32 bytes is an error naming the file, never used."""
    (tmp_path / jwt_secret.FILE_NAME).write_text(stored + "\n")
    with pytest.raises(RuntimeError, match="shorter than 32 bytes") as info:
        jwt_secret.resolve("", tmp_path)
    assert str(tmp_path / jwt_secret.FILE_NAME) in str(info.value)
    assert (tmp_path / jwt_secret.FILE_NAME).read_text() == stored + "\n"


def test_a_stored_secret_of_32_bytes_is_used(tmp_path: Path) -> None:
    """A hand-placed secret of exactly 32 bytes is accepted as stored."""
    (tmp_path / jwt_secret.FILE_NAME).write_text("s" * 32 + "\n")
    assert jwt_secret.resolve("", tmp_path) == "s" * 32

"""The `authsvc` command as operators run it: real processes, a temp SQLite file, the test Redis."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import SECRET, free_port

from service import migrate
from service.config import Settings
from service.tokens import ACCESS, REFRESH, TokenCodec

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1/auth/"
PASSWORD = "a long and unusual passphrase"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


@pytest.fixture
def cli_env(tmp_path: Path, redis_url: str, redis_prefix: str) -> dict[str, str]:
    """No AUTH_* from outside; the database is a temp SQLite file, Redis the test server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env.update({
        "PYTHONPATH": str(ROOT),
        "AUTH_DATABASE_URL": f"sqlite:///{tmp_path / 'auth.db'}",
        "AUTH_REDIS_URL": redis_url,
        "AUTH_REDIS_PREFIX": redis_prefix,
        "AUTH_WORKER_QUEUE": f"{redis_prefix}mail",
    })
    return env


def authsvc(cwd: Path, env: dict[str, str], *args: str,
            stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, text=True, timeout=60)


def messages(stderr: str) -> list[str]:
    """What the command said to the operator, leaving out its log records."""
    return [line for line in stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]


def user_rows(env: dict[str, str]) -> list[tuple[Any, ...]]:
    path = migrate.sqlite_path(env["AUTH_DATABASE_URL"])
    with sqlite3.connect(str(path)) as conn:
        return conn.execute("SELECT username, email, role FROM users ORDER BY id").fetchall()


def create_boss(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return authsvc(tmp_path, env, "create-user", "boss", "boss@example.com", "--role", "admin",
                   "--password-stdin", stdin=PASSWORD + "\n")


def test_migrate_creates_the_schema(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """`authsvc migrate` brings an empty database to the head revision with a users table."""
    url = cli_env["AUTH_DATABASE_URL"]
    done = authsvc(tmp_path, cli_env, "migrate")
    assert done.returncode == 0, done.stderr
    head = migrate.current(url)
    assert head is not None and head in done.stderr
    assert user_rows(cli_env) == []
    again = authsvc(tmp_path, cli_env, "migrate")
    assert again.returncode == 0 and migrate.current(url) == head


def test_created_admin_logs_in_with_an_admin_role(tmp_path: Path, cli_env: dict[str, str],
                                                  settings: Settings, make_client: Any) -> None:
    """create-user --role admin makes a user whose login tokens carry role admin."""
    assert authsvc(tmp_path, cli_env, "migrate").returncode == 0
    created = create_boss(tmp_path, cli_env)
    assert created.returncode == 0, created.stderr
    assert "boss" in created.stdout and "admin" in created.stdout
    assert user_rows(cli_env) == [("boss", "boss@example.com", "admin")]

    served = settings.replace(database={"url": cli_env["AUTH_DATABASE_URL"]})
    client = make_client(served)
    login = client.post(API + "login/", json={"username_or_email": "BOSS@example.com",
                                              "password": PASSWORD})
    assert login.status_code == 200, login.text
    codec = TokenCodec(served.jwt, SECRET)
    now = time.time()
    assert codec.decode(login.json()["access"], ACCESS, now).role == "admin"
    assert codec.decode(login.json()["refresh"], REFRESH, now).role == "admin"


@pytest.mark.parametrize(("password", "problem"), [
    ("password", "too common"),
    ("short", "too short"),
    ("boss@example.com", "too similar"),
])
def test_create_user_refuses_a_weak_password(tmp_path: Path, cli_env: dict[str, str],
                                             password: str, problem: str) -> None:
    """A password the policy refuses: non-zero exit, one line saying why, no user."""
    assert authsvc(tmp_path, cli_env, "migrate").returncode == 0
    done = authsvc(tmp_path, cli_env, "create-user", "boss", "boss@example.com",
                   "--password-stdin", stdin=password + "\n")
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1 and problem in said[0], done.stderr
    assert user_rows(cli_env) == []


@pytest.mark.parametrize(("username", "email", "field"), [
    ("BOSS", "other@example.com", "username"),
    ("other", "Boss@EXAMPLE.com", "email"),
])
def test_create_user_refuses_a_duplicate(tmp_path: Path, cli_env: dict[str, str], username: str,
                                         email: str, field: str) -> None:
    """A username or email taken (in another case): non-zero exit and one line naming it."""
    assert authsvc(tmp_path, cli_env, "migrate").returncode == 0
    assert create_boss(tmp_path, cli_env).returncode == 0
    done = authsvc(tmp_path, cli_env, "create-user", username, email, "--password-stdin",
                   stdin=PASSWORD + "\n")
    assert done.returncode != 0
    assert messages(done.stderr) == [f"authsvc: a user with that {field} already exists"], (
        done.stderr)
    assert len(user_rows(cli_env)) == 1


@pytest.mark.parametrize("command", [["migrate"], ["serve"],
                                     ["create-user", "x", "x@example.com", "--password-stdin"]])
def test_a_bad_environment_value_fails_naming_the_key(tmp_path: Path, cli_env: dict[str, str],
                                                      command: list[str]) -> None:
    """AUTH_SMTP_PORT=abc: non-zero exit with one line that names the variable."""
    done = authsvc(tmp_path, {**cli_env, "AUTH_SMTP_PORT": "abc"}, *command,
                   stdin=PASSWORD + "\n")
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1 and "AUTH_SMTP_PORT" in said[0], done.stderr
    assert not (tmp_path / "auth.db").exists()


def test_a_bad_config_file_value_fails_naming_the_key(tmp_path: Path,
                                                      cli_env: dict[str, str]) -> None:
    """A bad value in ./config.toml: non-zero exit with one line naming [section] key."""
    (tmp_path / "config.toml").write_text("[smtp]\nport = \"abc\"\n")
    done = authsvc(tmp_path, cli_env, "migrate")
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1 and "[smtp] port" in said[0], done.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """`serve` on an empty database exits non-zero telling the operator to run migrate."""
    done = authsvc(tmp_path, {**cli_env, "AUTH_SERVER_PORT": str(free_port())}, "serve")
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1 and "authsvc migrate" in said[0], done.stderr


def test_serve_in_a_fresh_directory_tells_to_migrate(tmp_path: Path,
                                                     cli_env: dict[str, str]) -> None:
    """With the default database URL and no ./data yet, serve still says to run migrate."""
    env = {k: v for k, v in cli_env.items() if k != "AUTH_DATABASE_URL"}
    done = authsvc(tmp_path, {**env, "AUTH_SERVER_PORT": str(free_port())}, "serve")
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1 and "authsvc migrate" in said[0], done.stderr


def test_create_user_on_an_unmigrated_database_tells_to_migrate(tmp_path: Path,
                                                                cli_env: dict[str, str]) -> None:
    """create-user before migrate: non-zero exit and one line telling to run migrate."""
    done = create_boss(tmp_path, cli_env)
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1 and "authsvc migrate" in said[0], done.stderr


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("serve did not start listening")


def test_serve_answers_register_and_login_over_http(tmp_path: Path,
                                                    cli_env: dict[str, str]) -> None:
    """`serve` on a migrated database: register and login over real HTTP, then SIGTERM ends it."""
    assert authsvc(tmp_path, cli_env, "migrate").returncode == 0
    port = free_port()
    env = {**cli_env, "AUTH_SERVER_PORT": str(port)}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve"], cwd=tmp_path,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + API, process)
        with httpx.Client(base_url=base, timeout=30) as http:
            registered = http.post(API + "register/", json={
                "username": "carol", "email": "carol@example.com", "password": PASSWORD,
                "password2": PASSWORD})
            assert registered.status_code == 201, registered.text
            login = http.post(API + "login/", json={"username_or_email": "carol",
                                                    "password": PASSWORD})
            assert login.status_code == 200, login.text
            assert set(login.json()) >= {"user", "access", "refresh"}
        assert (tmp_path / "data" / "jwt-secret").exists()  # generated under ./data of the cwd
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        finally:
            log.close()
    output = (tmp_path / "serve.log").read_text()
    # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is a clean exit too.
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in output, output
    assert "Traceback" not in output, output
    assert user_rows(cli_env) == [("carol", "carol@example.com", "user")]


FREEZE_PROBE = """
import asyncio, gc, sys
from service.app import create_app
from service.config import load_settings

async def main(freeze):
    app = create_app(load_settings(), freeze_heap=freeze)
    async with app.router.lifespan_context(app):
        print(gc.get_freeze_count())

asyncio.run(main(sys.argv[1] == "freeze"))
"""


@pytest.mark.parametrize("mode", ["freeze", "no-freeze"])
def test_a_server_process_freezes_its_startup_heap_out_of_the_gc(tmp_path: Path,
                                                                 cli_env: dict[str, str],
                                                                 mode: str) -> None:
    """`serve` builds the app with freeze_heap: the objects alive after startup leave the
    cyclic GC's reach (no full-collection stalls); an app built without it freezes nothing."""
    assert authsvc(tmp_path, cli_env, "migrate").returncode == 0
    done = subprocess.run([sys.executable, "-c", FREEZE_PROBE, mode], cwd=tmp_path, env=cli_env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    frozen = int(done.stdout.split()[-1])
    assert (frozen > 10_000) if mode == "freeze" else (frozen == 0), frozen
    assert "freeze_heap=True" in (ROOT / "service" / "cli.py").read_text()

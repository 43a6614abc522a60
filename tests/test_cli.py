"""The `authsvc` command as operators run it: real processes, a temp SQLite file, the test Redis."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from api import API, login
from pg import with_database
from support import SECRET, assert_private, free_port, messages

from service.config import Settings
from service.core.tokens import ACCESS, REFRESH, TokenCodec
from service.store import migrate
from service.store.keys import RedisKeys

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a long and unusual passphrase"


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
    signed_in = login(client, "BOSS@example.com", PASSWORD)
    assert signed_in.status_code == 200, signed_in.text
    codec = TokenCodec(served.jwt, SECRET)
    now = time.time()
    assert codec.decode(signed_in.json()["access"], ACCESS, now).role == "admin"
    assert codec.decode(signed_in.json()["refresh"], REFRESH, now).role == "admin"


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


@pytest.mark.parametrize("command", [["serve"], ["worker", "--burst"], ["dev"], ["migrate"]])
def test_a_redis_url_the_api_client_would_ignore_is_refused_in_one_line(
        tmp_path: Path, cli_env: dict[str, str], command: list[str]) -> None:
    """redis-py (RQ) honours ssl_ca_certs and RedisWire does not: mail would work and every
    API request answer 503. Every command refuses the URL first, naming the option."""
    url = "rediss://ops:s3cret@127.0.0.1:6380/0?ssl_ca_certs=/etc/ssl/private-ca.pem"
    env = {**cli_env, "AUTH_REDIS_URL": url, "AUTH_SERVER_PORT": str(free_port())}
    done = authsvc(tmp_path, env, *command)
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1, done.stderr
    assert said[0].startswith("authsvc: configuration error: [redis] url: ") and (
        "ssl_ca_certs" in said[0]), done.stderr
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "auth.db").exists()


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
    """`serve` on a migrated database: register and login over real HTTP, then SIGTERM ends it.
    Its access log (--access-log) names paths, never query strings (issue 11: links put
    tokens there)."""
    assert authsvc(tmp_path, cli_env, "migrate").returncode == 0
    port = free_port()
    env = {**cli_env, "AUTH_SERVER_PORT": str(port)}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--access-log"],
                               cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + API, process)
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/healthz?token=sekrit-in-a-query").status_code == 200
            registered = http.post(API + "register/", json={
                "username": "carol", "email": "carol@example.com", "password": PASSWORD,
                "password2": PASSWORD})
            assert registered.status_code == 201, registered.text
            signed_in = login(http, "carol", PASSWORD)
            assert signed_in.status_code == 200, signed_in.text
            assert set(signed_in.json()) >= {"user", "access", "refresh"}
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
    assert '"GET /healthz HTTP/1.1" 200' in output and "sekrit" not in output, output
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


# -- issue 8: what a new user meets --------------------------------------------------------------

def test_create_user_refuses_an_unknown_role(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """`--role superuser` is no role: one line naming it and the known ones, no user made."""
    assert authsvc(tmp_path, cli_env, "migrate").returncode == 0
    done = authsvc(tmp_path, cli_env, "create-user", "boss", "boss@example.com", "--role",
                   "superuser", "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1 and "superuser" in said[0] and "admin" in said[0], done.stderr
    assert user_rows(cli_env) == []
    extra = {**cli_env, "AUTH_AUTH_EXTRA_ROLES": "editor"}
    made = authsvc(tmp_path, extra, "create-user", "ed", "ed@example.com", "--role", "editor",
                   "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert user_rows(cli_env) == [("ed", "ed@example.com", "editor")]


@pytest.mark.parametrize("level", ["info", "Warning", "DEBUG"])
def test_the_log_level_is_a_setting_in_any_case(tmp_path: Path, cli_env: dict[str, str],
                                                level: str) -> None:
    """AUTH_LOG_LEVEL=info (lower case) simply works; [log] level in config.toml too."""
    done = authsvc(tmp_path, {**cli_env, "AUTH_LOG_LEVEL": level}, "migrate")
    assert done.returncode == 0, done.stderr
    assert ("database at revision" in done.stderr) == (level.upper() != "WARNING"), done.stderr
    (tmp_path / "config.toml").write_text(f'[log]\nlevel = "{level}"\n')
    done = authsvc(tmp_path, cli_env, "migrate")
    assert done.returncode == 0, done.stderr
    assert ("database at revision" in done.stderr) == (level.upper() != "WARNING"), done.stderr


def test_a_bad_log_level_is_one_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    done = authsvc(tmp_path, {**cli_env, "AUTH_LOG_LEVEL": "loud"}, "migrate")
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1 and "[log] level" in said[0] and "INFO" in said[0], done.stderr


def test_a_misspelled_auth_variable_is_warned_about(tmp_path: Path,
                                                    cli_env: dict[str, str]) -> None:
    """AUTH_SERVER_PROT is no setting: one warning naming the closest one, AUTH_SERVER_PORT;
    AUTH_CONFIG, AUTH_DATA_DIR and AUTH_TEST_* are not settings and not warned about."""
    (tmp_path / "c.toml").write_text("")
    env = {**cli_env, "AUTH_SERVER_PROT": "9000", "AUTH_CONFIG": str(tmp_path / "c.toml"),
           "AUTH_DATA_DIR": str(tmp_path / "data"), "AUTH_TEST_ANYTHING": "1"}
    done = authsvc(tmp_path, env, "migrate")
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "AUTH_" in line]
    assert len(warned) == 1, done.stderr
    assert "WARNING" in warned[0] and "AUTH_SERVER_PROT" in warned[0], warned
    assert "AUTH_SERVER_PORT" in warned[0], warned


def test_auth_data_dir_moves_the_sqlite_file(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """AUTH_DATA_DIR holds the default SQLite file too (with or without the shipped
    config.toml), and nothing is created in the working directory."""
    env = {k: v for k, v in cli_env.items() if k != "AUTH_DATABASE_URL"}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for name, extra in [("a", {}), ("b", {"AUTH_CONFIG": str(ROOT / "config.toml")})]:
        data = tmp_path / name
        done = authsvc(cwd, {**env, **extra, "AUTH_DATA_DIR": str(data)}, "migrate")
        assert done.returncode == 0, done.stderr
        assert (data / "auth.db").is_file()
        assert migrate.current(f"sqlite:///{data / 'auth.db'}") is not None
    assert list(cwd.iterdir()) == []


def test_the_data_directory_is_private_to_its_owner(tmp_path: Path,
                                                    cli_env: dict[str, str]) -> None:
    """A umask of 022 still gives data/ 0700 and the SQLite files and JWT secret 0600."""
    env = {k: v for k, v in cli_env.items() if k != "AUTH_DATABASE_URL"}
    probe = ("import os, sys; os.umask(0o022); from service.cli import main; "
             "main(sys.argv[1:])")
    # The JWT secret is what serve's app generates at startup.
    secret = ("import os; os.umask(0o022); from pathlib import Path; "
              "from service.store.jwt_secret import resolve; resolve('', Path('data'))")
    for command in (["-c", probe, "migrate"],
                    ["-c", probe, "create-user", "boss", "boss@example.com", "--password-stdin"],
                    ["-c", secret]):
        done = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env,
                              input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert_private(tmp_path / "data")
    assert {p.name for p in (tmp_path / "data").iterdir()} >= {"auth.db", "jwt-secret"}


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_an_unreachable_postgresql_is_one_line(tmp_path: Path, cli_env: dict[str, str],
                                               command: str) -> None:
    url = f"postgresql://authsvc:s3cret@127.0.0.1:{free_port()}/auth"
    done = authsvc(tmp_path, {**cli_env, "AUTH_DATABASE_URL": url,
                              "AUTH_SERVER_PORT": str(free_port())}, command)
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1 and "database" in said[0] and "127.0.0.1" in said[0], done.stderr
    assert "s3cret" not in done.stderr


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_a_missing_postgresql_database_is_one_line(tmp_path: Path, cli_env: dict[str, str],
                                                   request: pytest.FixtureRequest,
                                                   command: str) -> None:
    server = request.getfixturevalue("postgres_url")  # skipped when PostgreSQL is unreachable
    url = with_database(server, "authsvc_missing_" + os.urandom(4).hex())
    done = authsvc(tmp_path, {**cli_env, "AUTH_DATABASE_URL": url,
                              "AUTH_SERVER_PORT": str(free_port())}, command)
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1 and "does not exist" in said[0], done.stderr


@pytest.mark.parametrize("password", ["ab@s3cret", "s3cret@", "ab:s3cret"])
def test_a_password_with_an_at_sign_is_hidden_when_redis_or_the_database_is_down(
        tmp_path: Path, cli_env: dict[str, str], password: str) -> None:
    """redis-py and the database drivers take the user information up to the last @, so a
    password may hold an unencoded @ (or :): the one-line error must hide all of it."""
    redis_url = f"redis://ops:{password}@127.0.0.1:{free_port()}/0"
    done = authsvc(tmp_path, {**cli_env, "AUTH_REDIS_URL": redis_url}, "worker", "--burst")
    said = messages(done.stderr)
    assert done.returncode != 0 and len(said) == 1 and "Redis" in said[0], done.stderr
    assert "s3cret" not in done.stderr and "ops:***@127.0.0.1" in said[0], done.stderr
    db_url = f"postgresql://authsvc:{password}@127.0.0.1:{free_port()}/auth"
    done = authsvc(tmp_path, {**cli_env, "AUTH_DATABASE_URL": db_url}, "migrate")
    said = messages(done.stderr)
    assert done.returncode != 0 and len(said) == 1 and "database" in said[0], done.stderr
    assert "s3cret" not in done.stderr, done.stderr


def test_a_worker_without_redis_is_one_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    done = authsvc(tmp_path, {**cli_env, "AUTH_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},
                   "worker", "--burst")
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1 and "Redis" in said[0], done.stderr


def test_serve_on_a_port_in_use_is_one_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    assert authsvc(tmp_path, cli_env, "migrate").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = authsvc(tmp_path, {**cli_env, "AUTH_SERVER_PORT": str(port)}, "serve")
    assert done.returncode != 0
    said = messages(done.stderr)
    assert len(said) == 1 and "in use" in said[0] and str(port) in said[0], done.stderr
    assert "Traceback" not in done.stderr


def test_create_user_starts_with_no_sessions_left_under_its_id(
        tmp_path: Path, cli_env: dict[str, str], sync_redis: Any, redis_prefix: str) -> None:
    """An id can come round again (the highest row deleted before migration 0003, a restored
    backup): sessions a deleted account left under it must not pass to the new account, here
    an admin. create-user ends them, as register/ does."""
    assert authsvc(tmp_path, cli_env, "migrate").returncode == 0
    keys = RedisKeys(redis_prefix)
    session, index = keys.session("old"), keys.user_sessions(1)
    sync_redis.hset(session, mapping={"uid": "1", "cur": "jti-of-the-old-account"})
    sync_redis.sadd(index, "old")
    done = create_boss(tmp_path, cli_env)
    assert done.returncode == 0, done.stderr
    assert "(id 1, role admin)" in done.stdout
    assert not sync_redis.exists(session) and not sync_redis.sismember(index, "old")
    assert not sync_redis.exists(keys.user(1))  # no marker: the account is live


def test_create_user_without_redis_creates_nobody(tmp_path: Path,
                                                  cli_env: dict[str, str]) -> None:
    assert authsvc(tmp_path, cli_env, "migrate").returncode == 0
    down = {**cli_env, "AUTH_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    done = create_boss(tmp_path, down)
    assert done.returncode != 0 and "Redis unreachable" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert user_rows(cli_env) == []


def test_reset_mfa_lets_the_only_admin_back_in(tmp_path: Path, cli_env: dict[str, str],
                                               settings: Settings, make_client: Any) -> None:
    """The only admin lost their authenticator and codes: `authsvc reset-mfa` removes the
    factor, and the password alone signs in again. An unknown user: exit 1, one line."""
    from mfa_api import enrolled
    assert authsvc(tmp_path, cli_env, "migrate").returncode == 0
    assert create_boss(tmp_path, cli_env).returncode == 0
    served = settings.replace(database={"url": cli_env["AUTH_DATABASE_URL"]})
    client = make_client(served)
    enrolled(client, login(client, "boss", PASSWORD).json()["access"])
    assert login(client, "boss", PASSWORD).json()["mfa_required"] is True
    reset = authsvc(tmp_path, cli_env, "reset-mfa", "boss@example.com")
    assert reset.returncode == 0, reset.stderr
    assert "removed the second factor of boss" in reset.stdout
    assert set(login(client, "boss", PASSWORD).json()) >= {"access", "refresh"}
    again = authsvc(tmp_path, cli_env, "reset-mfa", "boss")
    assert again.returncode == 0 and "no second factor" in again.stdout
    unknown = authsvc(tmp_path, cli_env, "reset-mfa", "nobody")
    assert unknown.returncode == 1 and messages(unknown.stderr) == ["authsvc: no user 'nobody'"]

"""`authsvc dev` as a new user runs it: a real process with its own data directory and free
ports, bounded waits, and every process it leaves (its group, its embedded Valkey) killed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api import API
from support import assert_private, free_port, messages, valkey_pids

from service.config import Settings, load_settings
from service.local import embedded_redis
from service.local.dev import with_pages

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a long and unusual passphrase"
NEW_PASSWORD = "another long passphrase"


def eventually(check: object, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


class Dev:
    """One `authsvc dev` process, its output in a file; stop() is Ctrl-C."""

    def __init__(self, home: Path, env: dict[str, str], name: str = "dev") -> None:
        self.log = home / f"{name}.log"
        self.handle = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "dev"], cwd=home, env=env,
            stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def messages(self) -> list[str]:
        return messages(self.output())

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output())
            if found:
                return found
            if self.process.poll() is not None:
                raise AssertionError(f"dev exited ({self.process.returncode}) before "
                                     f"{pattern!r}:\n{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.output()}")

    def wait(self, timeout: float = 90) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"dev still running after {timeout} s:\n{self.output()}") from exc

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.wait(60)

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # its serve and worker too
            self.process.wait(timeout=30)
        self.handle.close()


@pytest.fixture
def home() -> Iterator[Path]:
    """A short directory (Unix socket paths are limited) holding ./data; whatever server a
    test left on it is killed by its pid."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="dv-"))
    yield path
    for pid in valkey_pids(path / "data"):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def dev_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env.update({
        "PYTHONPATH": str(ROOT),
        "AUTH_DATA_DIR": str(home / "data"),
        "AUTH_SERVER_PORT": str(free_port()),
        "AUTH_SMTP_PORT": str(free_port()),
        "AUTH_PASSWORDS_TIME_COST": "1",
        "AUTH_PASSWORDS_MEMORY_COST": "1024",
    })
    return env


@pytest.fixture
def devs() -> Iterator[list[Dev]]:
    started: list[Dev] = []
    yield started
    for dev in started:
        dev.kill()


def api(env: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{env['AUTH_SERVER_PORT']}", timeout=30)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def curl_body(line: str) -> dict[str, str]:
    """The JSON body of the curl command the mail catcher logged."""
    match = re.search(r"-d '(\{.*?\})'", line)
    assert match, line
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def test_a_failing_start_step_leaves_no_server_behind(home: Path, dev_env: dict[str, str],
                                                      devs: list[Dev]) -> None:
    """The mail catcher cannot start (an unresolvable [smtp] host): one line saying so, no
    traceback, and the embedded Valkey dev started is stopped, not orphaned."""
    dev = Dev(home, {**dev_env, "AUTH_SMTP_HOST": "mail.invalid"})
    devs.append(dev)
    assert dev.wait() != 0
    assert "Traceback" not in dev.output(), dev.output()
    said = dev.messages()
    assert len(said) == 1 and "mail catcher" in said[0], dev.output()
    assert "API on" not in dev.output()
    assert eventually(lambda: valkey_pids(home / "data") == []), dev.output()


def test_dev_on_a_port_in_use_is_one_line(home: Path, dev_env: dict[str, str],
                                          devs: list[Dev]) -> None:
    """Another server holds [server] port: one line, no announced URL, nothing left running."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        dev = Dev(home, {**dev_env, "AUTH_SERVER_PORT": str(port)})
        devs.append(dev)
        assert dev.wait() != 0
    said = dev.messages()
    assert len(said) == 1 and "in use" in said[0] and str(port) in said[0], dev.output()
    assert "API on" not in dev.output() and "Traceback" not in dev.output()
    assert valkey_pids(home / "data") == []


def test_dev_announces_a_listening_api_and_the_mail_catcher_says_what_to_post(
        home: Path, dev_env: dict[str, str], devs: list[Dev]) -> None:
    """The URL is announced only once the API answers on it; the catcher's log line for each
    email is a curl command that does what the (not yet hosted) page would; data/ holds the
    SQLite file (AUTH_DATA_DIR) and is owner-only, Valkey's files included; Ctrl-C stops
    everything, the embedded Valkey too."""
    dev = Dev(home, dev_env)
    devs.append(dev)
    dev.wait_for(r"API on http://")
    assert listening(int(dev_env["AUTH_SERVER_PORT"])), dev.output()
    with api(dev_env) as http:
        registered = http.post(API + "register/", json={
            "username": "alice", "email": "alice@example.com", "password": PASSWORD,
            "password2": PASSWORD})
        assert registered.status_code == 201, registered.text
        line = dev.wait_for(r".*curl -s -X POST \S+/verify-email/ .*").group(0)
        assert f"127.0.0.1:{dev_env['AUTH_SERVER_PORT']}{API}verify-email/" in line
        verified = http.post(API + "verify-email/", json=curl_body(line))
        assert verified.status_code == 200, verified.text

        assert http.post(API + "password-reset/",
                         json={"email": "alice@example.com"}).status_code == 200
        line = dev.wait_for(r".*curl -s -X POST \S+/password-reset/confirm/ .*").group(0)
        body = curl_body(line)
        assert body["password"] == body["password2"] == "<new password>"
        reset = http.post(API + "password-reset/confirm/",
                          json={**body, "password": NEW_PASSWORD, "password2": NEW_PASSWORD})
        assert reset.status_code == 200, reset.text
        # The pages are on, and the mails link to them, token in the fragment (issue 11).
        assert http.get("/auth/signin").status_code == 200
    port = dev_env["AUTH_SERVER_PORT"]
    mails = "".join(p.read_text() for p in (home / "data" / "outbox").iterdir())
    for page in ("verify", "reset"):
        assert f"http://127.0.0.1:{port}/auth/{page}#token=" in mails, mails
    assert "?token=" not in mails, mails
    data = home / "data"
    assert (data / "auth.db").is_file() and not (home / "auth.db").exists()
    assert list(data.rglob("*.aof")), sorted(data.rglob("*"))
    assert_private(data)
    assert valkey_pids(data)
    assert dev.stop() == 0, dev.output()
    assert "Traceback" not in dev.output(), dev.output()
    assert eventually(lambda: valkey_pids(data) == []), dev.output()


def test_dev_notices_a_dead_embedded_redis_and_starts_it_again(
        home: Path, dev_env: dict[str, str], devs: list[Dev]) -> None:
    dev = Dev(home, dev_env)
    devs.append(dev)
    dev.wait_for(r"API on http://")
    assert eventually(lambda: listening(int(dev_env["AUTH_SERVER_PORT"])), timeout=60)
    [first] = valkey_pids(home / "data")
    os.kill(first, signal.SIGKILL)  # the server this test's dev started
    dev.wait_for(r"embedded Redis stopped", timeout=30)
    assert eventually(lambda: [p for p in valkey_pids(home / "data") if p != first])
    with api(dev_env) as http:
        def registers() -> bool:
            answer = http.post(API + "register/", json={
                "username": "bob", "email": "bob@example.com", "password": PASSWORD,
                "password2": PASSWORD})
            assert answer.status_code in (201, 503), answer.text
            return answer.status_code == 201

        assert eventually(registers, timeout=30), dev.output()
    assert dev.output().count("embedded Redis stopped") == 1, dev.output()
    assert dev.stop() == 0, dev.output()


def test_a_restarted_dev_forgets_rate_limits_and_stops_a_server_left_behind(
        home: Path, dev_env: dict[str, str], devs: list[Dev]) -> None:
    """Rate-limit counters of an earlier run are cleared when dev starts (it owns its
    embedded Redis), so the README's walk-through can be run again; an embedded Valkey an
    earlier run left behind is used, said so, and stopped with the rest."""
    env = {**dev_env, "AUTH_RATE_LIMIT_PASSWORD_RESET": "1/hour"}
    first = Dev(home, env, "first")
    devs.append(first)
    first.wait_for(r"API on http://")
    assert eventually(lambda: listening(int(env["AUTH_SERVER_PORT"])), timeout=60)
    with api(env) as http:
        statuses = [http.post(API + "password-reset/", json={"email": "x@example.com"})
                    .status_code for _ in range(2)]
    assert statuses == [200, 429]
    assert first.stop() == 0, first.output()
    embedded_redis.ensure_running(home / "data")  # as a crashed run would leave it
    second = Dev(home, env, "second")
    devs.append(second)
    second.wait_for(r"API on http://")
    assert eventually(lambda: listening(int(env["AUTH_SERVER_PORT"])), timeout=60)
    with api(env) as http:
        assert http.post(API + "password-reset/",
                         json={"email": "x@example.com"}).status_code == 200
    assert "already runs" in second.output(), second.output()
    assert second.stop() == 0, second.output()
    assert eventually(lambda: valkey_pids(home / "data") == []), second.output()


def walk_through() -> str:
    """The README's curl walk-through, as a reader would paste it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Walk-through with curl", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_readme_walk_through_runs_twice_as_written(home: Path, dev_env: dict[str, str],
                                                       devs: list[Dev]) -> None:
    """Pasted twice into a shell (stopping at the first failing command) against one
    `authsvc dev`, the README's walk-through ends with a reset password both times."""
    dev = Dev(home, dev_env)
    devs.append(dev)
    dev.wait_for(r"API on http://")
    for run in range(2):
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", walk_through()], cwd=home,
                              env=dev_env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (run, done.stdout, done.stderr, dev.output())
        assert '"access"' in done.stdout and "HTTP/1.1 205" in done.stdout, done.stdout
        assert done.stdout.rstrip().endswith('{"message":"Password has been reset"}'), (
            done.stdout)
        time.sleep(1.1)  # the walk-through names its user after the second
    assert dev.stop() == 0, dev.output()


def test_dev_turns_the_pages_on_and_links_only_default_templates_to_them() -> None:
    """`authsvc dev` serves the pages and points the email links at them, but a link template
    you set, or AUTH_UI_ENABLED=false, is yours."""
    settings = Settings()
    paged, env = with_pages(settings, {})
    assert paged.ui.enabled and env["AUTH_UI_ENABLED"] == "true"
    assert paged.password_reset.url_template == "http://127.0.0.1:8000/auth/reset#token={token}"
    assert env["AUTH_PASSWORD_RESET_URL_TEMPLATE"] == paged.password_reset.url_template
    assert env["AUTH_AUTH_VERIFY_URL_TEMPLATE"].endswith("/auth/verify#token={token}")
    assert env["AUTH_ALERTS_URL_TEMPLATE"].endswith("/auth/not-me#token={token}")
    assert load_settings(None, env=env).alerts.url_template == paged.alerts.url_template

    own = settings.replace(password_reset={"url_template": "https://app.example/r?t={token}"})
    paged, env = with_pages(own, {})
    assert paged.password_reset.url_template == "https://app.example/r?t={token}"
    assert "AUTH_PASSWORD_RESET_URL_TEMPLATE" not in env and paged.ui.enabled

    assert with_pages(settings, {"AUTH_UI_ENABLED": "false"}) == (settings, {})

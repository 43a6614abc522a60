"""A site for the browser tests: a real `authsvc serve` and `authsvc worker` process on their
own data directory, Redis prefix and queue, with short tokens and the hosted pages on, reached
as http://localhost:PORT (a secure context, as the pages' Web Crypto and locks need)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
from support import Mailbox, app_settings, delete_prefixed, free_port, worker_env

from service.config import Settings

ACCESS_TTL = 6  # seconds: long enough for a step on a busy machine, short enough to wait out
START_LIMIT = 30.0
STOP_LIMIT = 10.0


class Process:
    """A child process in its own process group, its output in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], home: Path) -> None:
        self.name = name
        self.log = home / f"{name}.log"
        self._handle = self.log.open("wb")
        self.popen = subprocess.Popen(argv, env=env, cwd=home, stdout=self._handle,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM, then the whole group killed if it has not exited within STOP_LIMIT."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_LIMIT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)  # an RQ work horse too
                self.popen.wait(timeout=STOP_LIMIT)
        self._handle.close()


@dataclass
class Site:
    url: str
    port: int
    settings: Settings
    rotation: bool
    serve: Process
    worker: Process

    def crashes(self, since: int = 0) -> list[str]:
        """Tracebacks and errors the server or the worker logged (from byte `since` of the
        server's log): a crash is a bug."""
        found = [line for line in self.serve.output()[since:].splitlines()
                 if "Traceback" in line or re.search(r" (ERROR|CRITICAL) ", line)]
        found += [line for line in self.worker.output().splitlines() if "Traceback" in line]
        return found


def site_env(settings: Settings, port: int, rotation: bool,
             cors_origins: tuple[str, ...], extra: Mapping[str, str]) -> dict[str, str]:
    """The test configuration: pages on, short tokens, no rate limits or lockout, fast argon2,
    email links pointing at the pages on this site, and passkeys for this site's origin."""
    url = f"http://localhost:{port}"
    env = worker_env(settings)
    env.update({
        "AUTH_SERVER_PORT": str(port),
        "AUTH_UI_ENABLED": "true",
        "AUTH_JWT_ACCESS_TTL": str(ACCESS_TTL),
        "AUTH_JWT_LEEWAY": "0",
        "AUTH_JWT_ROTATE_REFRESH_TOKENS": "true" if rotation else "false",
        "AUTH_JWT_ROTATION_GRACE": "1",
        "AUTH_RATE_LIMIT_ENABLED": "false",
        "AUTH_LOCKOUT_ENABLED": "false",
        "AUTH_PASSWORDS_TIME_COST": "1",
        "AUTH_PASSWORDS_MEMORY_COST": "8192",
        "AUTH_PASSWORD_RESET_URL_TEMPLATE": url + "/auth/reset#token={token}",
        "AUTH_AUTH_VERIFY_URL_TEMPLATE": url + "/auth/verify#token={token}",
        "AUTH_ALERTS_URL_TEMPLATE": url + "/auth/not-me#token={token}",
        # Passkeys belong to "localhost" and are used from this site's own origin (its port).
        "AUTH_WEBAUTHN_RP_ID": "localhost",
        "AUTH_WEBAUTHN_ORIGINS": url,
        "AUTH_CORS_ALLOW_ORIGINS": ",".join(cors_origins),
        "AUTH_LOG_LEVEL": "WARNING",
        **extra,
    })
    return env


def wait_until_healthy(site: Site) -> None:
    deadline = time.monotonic() + START_LIMIT
    while True:
        for process in (site.serve, site.worker):
            assert process.alive(), f"{process.name} exited:\n{process.output()}"
        try:
            if httpx.get(f"http://127.0.0.1:{site.port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"serve did not answer:\n{site.serve.output()}"
        time.sleep(0.1)


@contextlib.contextmanager
def running_site(home: Path, redis_url: str, smtp_port: int, sqlite_template: Path,
                 rotation: bool, cors_origins: tuple[str, ...] = (),
                 extra: Mapping[str, str] | None = None) -> Iterator[Site]:
    """Serve and worker started, healthy; both stopped (and this site's Redis keys deleted)
    on the way out, also when starting failed."""
    prefix = f"authbrowser-{uuid.uuid4().hex[:10]}:"
    settings = app_settings(home, redis_url, prefix, smtp_port, sqlite_template)
    port = free_port()
    env = site_env(settings, port, rotation, cors_origins, extra or {})
    started: list[Process] = []
    try:
        serve = Process("serve", [sys.executable, "-m", "service.cli", "serve"], env, home)
        started.append(serve)
        worker = Process("worker", [sys.executable, "-m", "service.cli", "worker"], env, home)
        started.append(worker)
        site = Site(f"http://localhost:{port}", port, settings, rotation, serve, worker)
        wait_until_healthy(site)
        yield site
    finally:
        for process in reversed(started):
            process.stop()
        delete_prefixed(redis_url, prefix)


def wait_for_mail(mailbox: Mailbox, to: str, subject: str, timeout: float = 20) -> EmailMessage:
    """The newest message to `to` whose subject holds `subject`, once the worker sent it."""
    deadline = time.monotonic() + timeout
    while True:
        matching: list[EmailMessage] = [
            m for m in mailbox.messages
            if m["To"] == to and subject.lower() in str(m["Subject"]).lower()]
        if matching:
            return matching[-1]
        assert time.monotonic() < deadline, (
            f"no mail {subject!r} to {to} within {timeout} s; got "
            f"{[(m['To'], m['Subject']) for m in mailbox.messages]}")
        time.sleep(0.1)


def link_in(message: EmailMessage) -> str:
    """The first link of a mail's plain-text body."""
    body = message.get_body(preferencelist=("plain",))
    assert body is not None, message
    text = str(body.get_content())
    found = re.search(r"https?://\S+", text)
    assert found, text
    return found.group(0)


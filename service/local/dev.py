"""`authsvc dev`: the embedded Redis, the mail catcher, the API and the worker, run together
on embedded defaults until Ctrl-C, and stopped together whichever part fails."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

from redis import Redis
from redis.exceptions import RedisError

from service.config import (
    AlertSettings,
    AuthSettings,
    PasswordResetSettings,
    Settings,
    env_key_names,
)
from service.local import embedded_redis, outbox
from service.store.keys import RedisKeys

log = logging.getLogger("authsvc")


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _child_env() -> dict[str, str]:
    """The environment for dev's own processes: AUTH_* names that are no setting were
    warned about once, here, and are left out rather than warned about again."""
    known = set(env_key_names())
    return {k: v for k, v in os.environ.items()
            if not k.startswith("AUTH_") or k in known or k in ("AUTH_CONFIG", "AUTH_DATA_DIR")
            or k.startswith("AUTH_TEST_")}


def with_pages(settings: Settings, environ: Mapping[str, str]) -> tuple[Settings, dict[str, str]]:
    """dev's pages: [ui] on (unless AUTH_UI_ENABLED says otherwise), and every email link still
    at its default pointed at them, token in the fragment, so a mail in the outbox can be
    followed in a browser; links you configured are left alone. Returns the settings so
    changed and the environment that gives them to the API and the worker."""
    if "AUTH_UI_ENABLED" in environ and not settings.ui.enabled:
        return settings, {}
    pages = outbox.api_base(settings).removesuffix("/api/v1/auth/") + "/auth/"
    env = {"AUTH_UI_ENABLED": "true"}
    changes: dict[str, dict[str, object]] = {"ui": {"enabled": True}}
    for section, key, default, page in (
            ("password_reset", "url_template", PasswordResetSettings.url_template, "reset"),
            ("auth", "verify_url_template", AuthSettings.verify_url_template, "verify"),
            ("alerts", "url_template", AlertSettings.url_template, "not-me")):
        if getattr(getattr(settings, section), key) == default:
            link = pages + page + "#token={token}"
            env[f"AUTH_{section}_{key}".upper()] = link
            changes.setdefault(section, {})[key] = link
    return settings.replace(**changes), env


def _clear_abuse_counters(url: str, prefix: str) -> int:
    """Dev owns its embedded Redis: rate-limit and lockout counters of earlier runs go, so the
    README's walk-through can be run again after a restart (production keeps them)."""
    names = RedisKeys(prefix)
    conn = Redis.from_url(url, socket_timeout=5)
    try:
        keys = [k for pattern in (names.every("rl"), names.every("lock"))
                for k in conn.scan_iter(match=pattern, count=1000)]
        if keys:
            conn.delete(*keys)
        return len(keys)
    finally:
        conn.close()


class DevStop(Exception):
    """dev ends, saying why in one line."""


# Start steps that fail for reasons outside the code: reported in one line, after cleanup.
START_FAILURES: tuple[type[BaseException], ...] = (OSError, RuntimeError,
                                                    subprocess.CalledProcessError)
# What ends dev with one line: a stop it reports, or a start step that failed.
ENDINGS: tuple[type[BaseException], ...] = (DevStop, *START_FAILURES)


def run(settings: Settings, cleanup: contextlib.ExitStack, stopping: Callable[[], bool]) -> None:
    """Start the embedded Redis, the mail catcher, the API and the worker, each undone by
    `cleanup`; return when `stopping()`, raise DevStop when a part fails."""
    settings, page_env = with_pages(settings, os.environ)
    embedded = settings.redis.url == "embedded"
    data_dir = settings.data_dir
    if embedded:
        if embedded_redis.is_running(data_dir):
            log.warning("authsvc dev: an embedded Redis already runs in %s (left by an earlier "
                        "run?): using it, and stopping it with the rest", data_dir.absolute())
        cleanup.callback(embedded_redis.stop, data_dir)
        url = embedded_redis.ensure_running(data_dir)
        try:
            cleared = _clear_abuse_counters(url, settings.redis.prefix)
        except RedisError as exc:
            raise DevStop(f"the embedded Redis does not answer: {exc}") from exc
        if cleared:
            log.info("authsvc dev: cleared %d rate-limit/lockout counters of earlier runs",
                     cleared)
    if not _listening(settings.smtp.host, settings.smtp.port):
        try:
            catcher = outbox.start(data_dir / "outbox", settings)
        except START_FAILURES as exc:
            raise DevStop(f"cannot start the mail catcher on {settings.smtp.host}:"
                           f"{settings.smtp.port} ([smtp] host/port): {exc}") from exc
        cleanup.callback(catcher.stop)
    children: dict[str, subprocess.Popen[bytes]] = {}
    cleanup.callback(_stop_children, children)
    base = [sys.executable, "-m", "service.cli"]
    env = {**_child_env(), **page_env}
    children["API"] = subprocess.Popen([*base, "serve"], env=env)
    children["worker"] = subprocess.Popen([*base, "worker"], env=env)
    host, port = outbox.connect_host(settings.server.host), settings.server.port
    deadline = time.monotonic() + 60
    while not _listening(host, port):  # announce the URL only once it answers
        if stopping():
            return
        if children["API"].poll() is not None and not stopping():
            raise DevStop(f"the API exited with {children['API'].returncode} before it "
                           "listened (see above)")
        if time.monotonic() > deadline:
            raise DevStop(f"the API did not listen on {host}:{port} within 60 s")
        time.sleep(0.1)
    log.info("authsvc dev: API on http://%s:%s/api/v1/auth/ (docs: /api/v1/docs%s); "
             "Ctrl-C stops everything", settings.server.host, port,
             ", pages: /auth/signin" if settings.ui.enabled else "")
    next_check = 0.0
    while not stopping():
        for name, child in children.items():
            if child.poll() is not None and not stopping():  # not Ctrl-C reaching it first
                raise DevStop(f"the {name} process exited with {child.returncode}")
        if embedded and time.monotonic() >= next_check:
            next_check = time.monotonic() + 1
            if not embedded_redis.is_running(data_dir):
                log.warning("authsvc dev: the embedded Redis stopped: starting it again")
                try:
                    embedded_redis.ensure_running(data_dir)
                except START_FAILURES as exc:
                    raise DevStop(f"the embedded Redis stopped and did not start again: "
                                   f"{exc}") from exc
        time.sleep(0.2)


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 15
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

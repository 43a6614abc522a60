"""The `authsvc` command: serve, worker, migrate, create-user, dev."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import socket
import subprocess
import sys
import time

from .config import ConfigError, Settings, load_settings

log = logging.getLogger("authsvc")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        sys.exit(f"authsvc: configuration error: {exc}")


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Chatty at INFO, and nothing an operator needs: plugin set-up, per-connection SMTP lines.
    for name in ("alembic.runtime.plugins", "mail.log"):
        logging.getLogger(name).setLevel(logging.WARNING)


def cmd_migrate(args: argparse.Namespace) -> None:
    from . import migrate

    settings = _settings()
    migrate.upgrade(settings.database.url)
    log.info("database at revision %s", migrate.current(settings.database.url))


def _require_migrated(settings: Settings) -> None:
    from alembic.script import ScriptDirectory

    from . import migrate

    head = ScriptDirectory.from_config(migrate.alembic_config(settings.database.url)).get_current_head()
    current = migrate.current(settings.database.url)
    if current != head:
        sys.exit(f"authsvc: database is at revision {current}, code expects {head}: "
                 "run `authsvc migrate` first")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from .app import UVICORN_OPTIONS, create_app

    settings = _settings()
    _require_migrated(settings)
    uvicorn.run(create_app(settings, freeze_heap=True), host=settings.server.host,
                port=settings.server.port, loop="auto", http="auto",
                access_log=args.access_log, log_level="info", **UVICORN_OPTIONS)


def cmd_worker(args: argparse.Namespace) -> None:
    from redis import Redis
    from rq import Queue, Worker

    from .embedded_redis import resolve_url

    settings = _settings()
    url = resolve_url(settings.redis.url, settings.data_dir)
    connection = Redis.from_url(url, socket_timeout=None,
                                socket_connect_timeout=settings.redis.socket_timeout)
    queue = Queue(settings.worker.queue, connection=connection)
    worker = Worker([queue], connection=connection)
    # The scheduler moves retries whose backoff has passed back onto the queue.
    worker.work(burst=args.burst, with_scheduler=True, logging_level="INFO")


def cmd_create_user(args: argparse.Namespace) -> None:
    from . import identity
    from .passwords import PasswordHasher, policy_problems
    from .schemas import DISPLAY_NAME_MAX, ROLE_MAX

    settings = _settings()
    _require_migrated(settings)
    password = (sys.stdin.readline().rstrip("\n") if args.password_stdin
                else getpass.getpass("Password: "))
    # The same rules as register/: username and email judged on the forms stored.
    problems = [p for p in (identity.username_problem(args.username),
                            identity.email_problem(args.email),
                            _column_problem("display name", args.display_name, DISPLAY_NAME_MAX),
                            _column_problem("role", args.role, ROLE_MAX, blank=False)) if p]
    problems += policy_problems(password, settings.passwords, username=args.username,
                                email=args.email)
    if problems:
        sys.exit("authsvc: " + " ".join(problems))
    hasher = PasswordHasher(settings.passwords)
    asyncio.run(_create_user(settings, args, hasher.hash_sync(password)))
    hasher.close()


def _column_problem(name: str, value: str, max_length: int, *, blank: bool = True) -> str | None:
    """Why `value` cannot be stored in its column (as register/ and the admin API judge it)."""
    from .schemas import encodable

    if "\x00" in value or not encodable(value):
        return f"The {name} holds characters that are not text."
    if not blank and not value.strip():
        return f"The {name} may not be blank."
    if len(value) > max_length:
        return f"The {name} may have at most {max_length} characters."
    return None


async def _create_user(settings: Settings, args: argparse.Namespace, password_hash: str) -> None:
    from .app import database
    from .identity import canonical_email, canonical_username
    from .users import DuplicateUser, UserStore

    db = database(settings)
    await db.connect()
    try:
        user = await UserStore(db).create(
            username=canonical_username(args.username), email=canonical_email(args.email),
            display_name=args.display_name, role=args.role, password_hash=password_hash)
    except DuplicateUser as exc:
        sys.exit(f"authsvc: a user with that {exc.field} already exists")
    finally:
        await db.disconnect()
    print(f"created user {user.username} (id {user.id}, role {user.role})")


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def cmd_dev(args: argparse.Namespace) -> None:
    """Everything on embedded defaults in one command; Ctrl-C stops it all."""
    from . import embedded_redis, outbox

    settings = _settings()
    cmd_migrate(args)
    started_redis = False
    if settings.redis.url == "embedded":
        started_redis = not embedded_redis.is_running(settings.data_dir)
        embedded_redis.ensure_running(settings.data_dir)
    catcher = None
    if not _listening(settings.smtp.host, settings.smtp.port):
        catcher = outbox.start(settings.data_dir / "outbox", settings.smtp.host, settings.smtp.port)
    base = [sys.executable, "-m", "service.cli"]
    children = [subprocess.Popen(base + ["serve"]), subprocess.Popen(base + ["worker"])]
    log.info("authsvc dev: API on http://%s:%s/api/v1/auth/ (docs: /api/v1/docs); "
             "Ctrl-C stops everything", settings.server.host, settings.server.port)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if catcher is not None:
            catcher.stop()
        if started_redis:
            embedded_redis.stop(settings.data_dir)
        log.info("authsvc dev: stopped")
    failed = [c.returncode for c in children if c.returncode not in (0, -signal.SIGINT, None)]
    if failed and not stopping:
        sys.exit(f"authsvc dev: a process exited with {failed[0]}")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="authsvc", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API (uvicorn) per [server]")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run the RQ worker that sends email")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="upgrade the database schema, keeping rows").set_defaults(
        func=cmd_migrate)
    create = sub.add_parser("create-user", help="create a user with any role (e.g. admin)")
    create.add_argument("username")
    create.add_argument("email")
    create.add_argument("--role", default="user")
    create.add_argument("--display-name", default="")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input instead of prompting")
    create.set_defaults(func=cmd_create_user)
    sub.add_parser("dev", help="migrate, embedded Redis, API, worker and mail catcher").set_defaults(
        func=cmd_dev)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    _logging(os.environ.get("AUTH_LOG_LEVEL", "INFO"))
    args.func(args)


if __name__ == "__main__":
    main()

"""The `authsvc` command: serve, worker, migrate, create-user, delete-user, reset-mfa,
import-django, dev."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import getpass
import logging
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

from service.config import ConfigError, Settings, load_settings, unknown_env_warnings

log = logging.getLogger("authsvc")


@functools.cache
def _settings() -> Settings:
    try:
        settings = load_settings()
        if settings.redis.url != "embedded":
            from service.store.redis_wire import check_url

            check_url(settings.redis.url)  # what the API's Redis client would not honour
    except ConfigError as exc:
        sys.exit(f"authsvc: configuration error: {exc}")
    return settings


def _hide_password(url: str) -> str:
    """`url` with its password as ***. The user information runs to the last @ of the host
    part (redis-py and the database drivers read it so: a password may hold an @); a URL
    with an @ past its host part (an unencoded / ? # in the password) hides all before it."""
    scheme, sep, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if not sep or not authority or "@" not in rest:  # no host part: unix:///a@b.sock
        return url
    if "@" not in authority:
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    userinfo, _, host = authority.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}{rest[len(authority):]}"


def _database_down(exc: BaseException) -> str | None:
    """Why the database cannot be used, in one line; None for an error that is a bug."""
    from asyncpg import PostgresError
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        exc = exc.orig if isinstance(exc.orig, BaseException) else exc
    if isinstance(exc, (OSError, TimeoutError, sqlite3.OperationalError, PostgresError,
                        DBAPIError)) or type(exc).__module__.startswith("sqlalchemy.dialects"):
        return _first_line(exc)
    return None


def _first_line(exc: BaseException) -> str:
    """An error in one line: its message's first, else its type's name."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def _database_errors(settings: Settings) -> Iterator[None]:
    """An unreachable or missing database is one line, not a traceback."""
    try:
        yield
    except Exception as exc:
        reason = _database_down(exc)
        if reason is None:
            raise
        sys.exit(f"authsvc: cannot use the database {_hide_password(settings.database.url)}: "
                 f"{reason}")


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Chatty at INFO, and nothing an operator needs: plugin set-up, per-connection SMTP lines.
    for name in ("alembic.runtime.plugins", "mail.log"):
        logging.getLogger(name).setLevel(logging.WARNING)


def cmd_migrate(args: argparse.Namespace) -> None:
    from service.store import migrate

    settings = _settings()
    with _database_errors(settings):
        migrate.upgrade(settings.database.url)
        log.info("database at revision %s", migrate.current(settings.database.url))


def _require_migrated(settings: Settings) -> None:
    from alembic.script import ScriptDirectory

    from service.store import migrate

    script = ScriptDirectory.from_config(migrate.alembic_config(settings.database.url))
    head = script.get_current_head()
    with _database_errors(settings):
        current = migrate.current(settings.database.url)
    if current != head:
        sys.exit(f"authsvc: database is at revision {current}, code expects {head}: "
                 "run `authsvc migrate` first")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from service.app import create_app
    from service.http.server import fit_file_limit, hide_query_strings, uvicorn_options

    settings = _settings()
    _require_migrated(settings)
    problem = _port_problem(settings.server.host, settings.server.port)
    if problem:
        sys.exit(problem)
    server = fit_file_limit(settings.server)
    hide_query_strings()
    uvicorn.run(create_app(settings, freeze_heap=True), host=server.host, port=server.port,
                loop="auto", access_log=args.access_log, log_level=settings.log.level.lower(),
                **uvicorn_options(server))


def _port_problem(host: str, port: int) -> str | None:
    """Bind as uvicorn will (SO_REUSEADDR): a port in use is one line, before anything starts."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (f"authsvc: port {port} on {host} is already in use: stop what uses it or "
                    "set [server] port (AUTH_SERVER_PORT)")
        return f"authsvc: cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def cmd_worker(args: argparse.Namespace) -> None:
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisDown
    from redis.exceptions import TimeoutError as RedisTimeout
    from rq import Queue, Worker

    from service.local.embedded_redis import resolve_url
    from service.store.mail import queue_name

    settings = _settings()
    try:
        url = resolve_url(settings.redis.url, settings.data_dir)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"authsvc: cannot start the embedded Redis: {exc}")
    try:
        connection = Redis.from_url(url, socket_timeout=None,
                                    socket_connect_timeout=settings.redis.socket_timeout)
        connection.ping()
        queue = Queue(queue_name(settings), connection=connection)
        worker = Worker([queue], connection=connection)
        # The scheduler moves retries whose backoff has passed back onto the queue.
        worker.work(burst=args.burst, with_scheduler=True,
                    logging_level=settings.log.level.upper())
    except (RedisDown, RedisTimeout) as exc:
        sys.exit(f"authsvc: cannot reach Redis at {_hide_password(url)}: "
                 f"{_first_line(exc)}")


def cmd_create_user(args: argparse.Namespace) -> None:
    from service.core import identity
    from service.core.passwords import PasswordHasher, policy_problems
    from service.http.inputs import DISPLAY_NAME_MAX, ROLE_MAX

    settings = _settings()
    roles = settings.auth.known_roles()
    if args.role not in roles:
        sys.exit(f"authsvc: unknown role {args.role!r}: known roles are {', '.join(roles)} "
                 "(more with [auth] extra_roles)")
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
    from service.http.inputs import encodable

    if "\x00" in value or not encodable(value):
        return f"The {name} holds characters that are not text."
    if not blank and not value.strip():
        return f"The {name} may not be blank."
    if len(value) > max_length:
        return f"The {name} may have at most {max_length} characters."
    return None


async def _create_user(settings: Settings, args: argparse.Namespace, password_hash: str) -> None:
    from redis import RedisError

    from service.app import database, redis_clients
    from service.core.identity import canonical_email, canonical_username
    from service.store.cache import UserCache
    from service.store.keys import RedisKeys
    from service.store.sessions import SessionStore
    from service.store.users import DuplicateUser, UserStore

    db = database(settings)
    with _database_errors(settings):
        await db.connect()
    wire, sync_redis = redis_clients(settings)
    sync_redis.close()
    users = UserStore(db)
    try:
        user = await users.create(
            username=canonical_username(args.username), email=canonical_email(args.email),
            display_name=args.display_name, role=args.role, password_hash=password_hash)
        try:
            # As register/ does: a new account starts with no sessions of its id. An id can
            # come round again (deleted before migration 0003, a restored backup), and an old
            # refresh token would otherwise renew into this account, with its role.
            keys = RedisKeys(settings.redis.prefix)
            await SessionStore(wire, keys, index_ttl=1).purge_user(user.id)
            await UserCache(wire, keys, ttl=1).forget(user.id)
        except (OSError, RedisError) as exc:  # whole or not at all
            await users.delete(user.id)
            sys.exit(f"authsvc: Redis unreachable ({exc}): no user created")
    except DuplicateUser as exc:
        sys.exit(f"authsvc: a user with that {exc.field} already exists")
    finally:
        await wire.close()
        await db.disconnect()
    print(f"created user {user.username} (id {user.id}, role {user.role})")


def cmd_delete_user(args: argparse.Namespace) -> None:
    settings = _settings()
    _require_migrated(settings)
    asyncio.run(_delete_user(settings, args.user))


async def _delete_user(settings: Settings, identifier: str) -> None:
    """As the API's account deletion: every session and token of the user ends at once, which
    a DELETE in SQL cannot do (Redis holds the sessions and the cached row)."""
    from redis import RedisError

    from service.app import database, redis_clients
    from service.core.deletion import delete_account
    from service.store.keys import RedisKeys
    from service.store.sessions import SessionStore
    from service.store.users import UserStore

    db = database(settings)
    await db.connect()
    wire, sync_redis = redis_clients(settings)
    sync_redis.close()
    try:
        users = UserStore(db)
        user = await users.by_identifier(identifier)
        if user is None:
            sys.exit(f"authsvc: no user {identifier!r}")
        sessions = SessionStore(wire, RedisKeys(settings.redis.prefix),
                                index_ttl=settings.jwt.refresh_ttl + settings.jwt.leeway + 1)
        try:
            await delete_account(users, sessions, user.id)
        except (OSError, RedisError) as exc:  # whole or not at all: see deletion.py
            sys.exit(f"authsvc: could not delete {user.username}: {exc}")
    finally:
        await wire.close()
        await db.disconnect()
    print(f"deleted user {user.username} (id {user.id}): every session and token refused")


def cmd_reset_mfa(args: argparse.Namespace) -> None:
    settings = _settings()
    _require_migrated(settings)
    asyncio.run(_reset_mfa(settings, args.user))


async def _reset_mfa(settings: Settings, identifier: str) -> None:
    """The admin API's MFA reset, for when no admin can sign in (the only admin lost their
    authenticator and codes): the user's factors go; they sign in with the password alone."""
    from service.app import database
    from service.store.mfa import MfaStore
    from service.store.users import UserStore

    db = database(settings)
    await db.connect()
    try:
        user = await UserStore(db).by_identifier(identifier)
        if user is None:
            sys.exit(f"authsvc: no user {identifier!r}")
        had = await MfaStore(db).remove_all(user.id)
    finally:
        await db.disconnect()
    log.warning("security: second factor of user %s reset from the command line", user.id)
    print(f"{'removed the second factor of' if had else 'no second factor to remove for'} "
          f"{user.username} (id {user.id})")


def cmd_import_django(args: argparse.Namespace) -> None:
    from service.store.django_source import SourceError

    settings = _settings()
    if not 1 <= args.batch_size <= 5000:
        sys.exit("authsvc: --batch-size must be 1..5000")
    _require_migrated(settings)
    columns = {}
    for item in args.column:
        name, sep, column = item.partition("=")
        if not sep or not name or not column:
            sys.exit(f"authsvc: --column {item!r}: expected FIELD=COLUMN")
        columns[name] = column
    try:
        with _database_errors(settings):
            summary = asyncio.run(_import_django(settings, args, columns))
    except SourceError as exc:
        sys.exit(f"authsvc: import-django: {exc}")
    for line in summary:
        print(line)


async def _import_django(settings: Settings, args: argparse.Namespace,
                         columns: dict[str, str]) -> list[str]:
    from tqdm import tqdm

    from service.config import ADMIN_ROLE
    from service.core.django_import import DjangoImport, ImportOptions
    from service.store.django_source import DjangoSource
    from service.store.user_import import ImportTarget

    options = ImportOptions(
        known_roles=settings.auth.known_roles(), default_role=settings.auth.default_role,
        admin_role=ADMIN_ROLE, emails_verified=not args.unverified_emails,
        dry_run=args.dry_run, batch_size=args.batch_size, blacklist=not args.no_blacklist)
    target = ImportTarget(settings.database.url)
    try:
        async with DjangoSource(args.database_url, args.table, columns) as source:
            total = await source.count()
            # A bar on a terminal only (tqdm's disable=None); logs and CI get the summary.
            with tqdm(total=total, unit=" users", file=sys.stderr, disable=None,
                      desc="dry run" if args.dry_run else "importing") as bar:
                summary = await DjangoImport(source, target, options).run(bar.update)
    finally:
        await target.close()
    header = [f"Django users read: {total}" + (" (dry run: nothing written)"
                                               if args.dry_run else "")]
    return header + summary.lines()


def cmd_dev(args: argparse.Namespace) -> None:
    """Everything on embedded defaults in one command; Ctrl-C stops it all."""
    from service.local import dev

    settings = _settings()
    problem = _port_problem(settings.server.host, settings.server.port)
    if problem:
        sys.exit(problem)
    log.info("authsvc dev: data directory %s", settings.data_dir.absolute())
    cmd_migrate(args)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    failure = None
    # Every step from here on is undone by `cleanup`, whichever step fails.
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(log.info, "authsvc dev: stopped")
        try:
            dev.run(settings, cleanup, lambda: stopping)
        except dev.ENDINGS as exc:
            failure = f"authsvc dev: {exc}"
    if failure:
        sys.exit(failure)


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
    delete = sub.add_parser("delete-user", help="delete an account, ending its sessions at once")
    delete.add_argument("user", help="the username or email")
    delete.set_defaults(func=cmd_delete_user)
    reset_mfa = sub.add_parser("reset-mfa", help="remove a user's second factor (authenticator "
                                                 "and recovery codes)")
    reset_mfa.add_argument("user", help="the username or email")
    reset_mfa.set_defaults(func=cmd_reset_mfa)
    imp = sub.add_parser(
        "import-django", help="import a Django project's users, keeping their password hashes",
        description="Import the users of a Django project's database (SQLite or PostgreSQL), "
                    "keeping their password hashes; safe to re-run (README: Moving in from "
                    "Django).")
    imp.add_argument("database_url", help="sqlite:///path/db.sqlite3, postgresql://..., or a "
                                          "SQLite file")
    imp.add_argument("--table", default="auth_user",
                     help="the Django user table (default auth_user; e.g. accounts_user)")
    imp.add_argument("--column", action="append", default=[], metavar="FIELD=COLUMN",
                     help="read an authsvc field (username, email, password, is_active, "
                          "date_joined, display_name, role) from another column; repeatable")
    imp.add_argument("--dry-run", action="store_true", help="write nothing, report the same")
    imp.add_argument("--batch-size", type=int, default=1000,
                     help="users per transaction (default 1000)")
    imp.add_argument("--no-blacklist", action="store_true",
                     help="do not import simplejwt's token blacklist")
    imp.add_argument("--unverified-emails", action="store_true",
                     help="mark imported emails unverified (default: verified)")
    imp.set_defaults(func=cmd_import_django)
    dev = sub.add_parser("dev", help="migrate, embedded Redis, API, worker and mail catcher")
    dev.set_defaults(func=cmd_dev)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = _settings()
    _logging(settings.log.level.upper())
    for line in unknown_env_warnings():
        log.warning("%s", line)
    args.func(args)


if __name__ == "__main__":
    main()

"""`authsvc import-django` on the Django reference's database: what it takes, what it skips
and why, and that running it again changes nothing it must not."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from api import PROFILE, bearer, login, register
from django_ref import (
    IMPORTABLE,
    SKIPPED,
    TABLE,
    TOKENS,
    USERS,
    copy_fixture,
    migration_settings,
    run_import,
)
from support import sql

from service.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables an import writes."""
    return {table: [tuple(r) for r in sql(settings, f"SELECT * FROM {table} ORDER BY 1")]
            for table in ("users", "legacy_users", "legacy_tokens")}


def test_the_import_takes_users_as_they_were_and_skips_with_reasons(settings: Settings) -> None:
    summary = run_import(settings)
    assert summary.imported == IMPORTABLE and dict(summary.skipped) == SKIPPED, summary.lines()
    assert summary.skipped_examples["username_has_at"] == [USERS["dave@home"]["id"]]
    assert summary.skipped_examples["email_missing"] == [USERS["noemail"]["id"]]
    # The look-alikes: the later id of each pair is refused, never merged into the first.
    assert summary.skipped_examples["email_conflict"] == [USERS["bob_fullwidth"]["id"]]
    assert summary.skipped_examples["username_conflict"] == [USERS["Ｃarol"]["id"]]
    assert summary.tokens_revoked == len(TOKENS["blacklisted"])
    rows = {r["username"]: r for r in sql(settings, "SELECT * FROM users")}
    assert len(rows) == IMPORTABLE
    for name, row in rows.items():
        user = USERS[name]
        assert row["legacy_id"] == user["id"]
        assert row["email"] == user["email"]
        assert row["password_hash"] == user["password_hash"]
        assert row["display_name"] == user["display_name"]
        assert row["role"] == user["role"]
        assert bool(row["is_active"]) == user["is_active"]
        assert row["token_version"] == 0
        assert row["email_verified"] == 1
    assert rows["siteadmin"]["role"] == "admin"
    assert not rows["inactive"]["is_active"]
    assert rows["nopass"]["password_hash"].startswith("!")
    assert rows["siteadmin"]["date_joined"].startswith("2024-03-01 12:00:00")
    assert rows["pbkdf2_one"]["date_joined"].startswith("2022-12-31 23:59:59")
    revoked = {r["jti"] for r in sql(settings, "SELECT jti FROM legacy_tokens WHERE revoked")}
    assert revoked == {t["jti"] for t in TOKENS["blacklisted"]}


def test_a_second_import_changes_nothing(settings: Settings) -> None:
    run_import(settings)
    before = snapshot(settings)
    again = run_import(settings)
    assert (again.imported, again.updated, again.unchanged, again.tokens_revoked) == \
        (0, 0, IMPORTABLE, 0), again.lines()
    assert dict(again.skipped) == SKIPPED
    assert snapshot(settings) == before


def test_a_dry_run_writes_nothing_and_reports_the_same(settings: Settings) -> None:
    before = snapshot(settings)
    dry = run_import(settings, dry_run=True)
    assert snapshot(settings) == before
    real = run_import(settings)
    assert (dry.imported, dict(dry.skipped), dry.tokens_revoked) == \
        (real.imported, dict(real.skipped), real.tokens_revoked)


def test_a_re_run_updates_profiles_only_and_never_brings_back_a_deleted_account(
        settings: Settings, tmp_path: Path, make_client: Any) -> None:
    django = copy_fixture(tmp_path)
    run_import(settings, django)
    api = make_client(settings.replace(migration=migration_settings()))
    signed_in = login(api, "argon2_one", USERS["argon2_one"]["password"]).json()
    hashed = sql(settings, "SELECT password_hash, token_version FROM users "
                           "WHERE username = 'argon2_one'")[0]
    assert hashed["password_hash"].startswith("$argon2id$")
    gone = api.request("DELETE", PROFILE, headers=bearer(
        login(api, "carol", USERS["carol"]["password"]).json()["access"]),
        json={"password": USERS["carol"]["password"]})
    assert gone.status_code == 204
    # Meanwhile, on the old side: a new display name, a new password, a role and a new user.
    with closing(sqlite3.connect(django)) as db, db:
        db.execute(f"UPDATE {TABLE} SET display_name = 'Renamed', password = 'pbkdf2_sha256$1$"
                   "x$eA==', role = 'admin', is_active = 0 WHERE username = 'argon2_one'")
        db.execute(f"INSERT INTO {TABLE} (password, is_superuser, username, first_name, "
                   "last_name, is_staff, is_active, date_joined, email, display_name, role) "
                   "SELECT password, 0, 'newcomer', '', '', 0, 1, date_joined, "
                   f"'newcomer@example.com', 'New', 'user' FROM {TABLE} "
                   "WHERE username = 'pbkdf2_one'")
    again = run_import(settings, django)
    # newcomer, and Ｃarol: the name carol held is free once carol is deleted.
    assert (again.imported, again.updated) == (2, 1), again.lines()
    assert again.skipped_examples["deleted_in_authsvc"] == [USERS["carol"]["id"]]
    assert sql(settings, "SELECT username FROM users WHERE legacy_id = ?", USERS["Ｃarol"]["id"]
               )[0]["username"] == "Carol"  # stored in NFKC, as a registration would be
    row = sql(settings, "SELECT * FROM users WHERE username = 'argon2_one'")[0]
    assert row["display_name"] == "Renamed"
    assert (row["password_hash"], row["token_version"]) == tuple(hashed)  # untouched
    assert (row["role"], row["is_active"]) == ("user", 1)
    assert not sql(settings, "SELECT id FROM users WHERE username = 'carol'")
    me = api.get(PROFILE, headers=bearer(signed_in["access"]))
    assert me.status_code == 200, me.text  # the session it had goes on
    assert login(api, "newcomer", USERS["pbkdf2_one"]["password"]).status_code == 200


def test_existing_authsvc_users_are_never_merged_into(settings: Settings,
                                                      make_client: Any) -> None:
    api: httpx.Client = make_client(settings)
    register(api, username="pbkdf2_one", email="someone.else@example.com")
    register(api, username="another", email="ARGON2.one@example.com")
    summary = run_import(settings)
    assert USERS["pbkdf2_one"]["id"] in summary.skipped_examples["username_conflict"]
    assert USERS["argon2_one"]["id"] in summary.skipped_examples["email_conflict"]
    assert sql(settings, "SELECT legacy_id FROM users WHERE username = 'pbkdf2_one'"
               )[0]["legacy_id"] is None
    assert login(api, "pbkdf2_one", "correct horse battery").status_code == 200


# -- the command -------------------------------------------------------------------------------
def django_auth_user(path: Path) -> None:
    """Django's own auth_user shape: first/last name, is_superuser, no role column; and a
    custom one with other column names."""
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE auth_user (id integer PRIMARY KEY, password varchar(128), "
                   "is_superuser bool, username varchar(150), first_name varchar(150), "
                   "last_name varchar(150), email varchar(254), is_staff bool, is_active bool, "
                   "date_joined datetime)")
        hashed = USERS["argon2_one"]["password_hash"]
        db.executemany("INSERT INTO auth_user VALUES (?, ?, ?, ?, ?, ?, ?, 0, 1, ?)", [
            (7, hashed, 1, "root", "Ada", "Lovelace", "root@example.com", "2020-01-02 03:04:05"),
            (8, hashed, 0, "plain", "", "", "plain@example.com", "2021-01-02 03:04:05"),
            (9, "md5$salt$abc", 0, "old", "", "", "old@example.com", "2021-01-02 03:04:05")])
        db.execute("CREATE TABLE people (id integer PRIMARY KEY, pw text, login text, "
                   "mail text, full_name text, kind text)")
        db.execute("INSERT INTO people VALUES (3, ?, 'mapped', 'mapped@example.com', 'M. Apped', "
                   "'admin')", (hashed,))


def authsvc(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env.update({"PYTHONPATH": str(ROOT), "AUTH_DATABASE_URL": settings.database.url,
                "AUTH_REDIS_URL": settings.redis.url, "AUTH_REDIS_PREFIX": settings.redis.prefix,
                "AUTH_DATA_DIR": str(settings.data_dir)})
    return env


def test_the_command_reads_auth_user_maps_columns_and_summarises(
        settings: Settings, cli_env: dict[str, str], tmp_path: Path) -> None:
    django = tmp_path / "plain.sqlite3"
    django_auth_user(django)
    dry = authsvc(tmp_path, cli_env, "import-django", str(django), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing written" in dry.stdout and "imported: 2" in dry.stdout
    assert not sql(settings, "SELECT id FROM users")
    done = authsvc(tmp_path, cli_env, "import-django", f"sqlite:///{django}")
    assert done.returncode == 0, done.stderr
    assert "imported: 2" in done.stdout and "hash_unsupported: 1 (Django ids 9)" in done.stdout
    rows = {r["username"]: r for r in sql(settings, "SELECT * FROM users")}
    assert (rows["root"]["display_name"], rows["root"]["role"]) == ("Ada Lovelace", "admin")
    assert (rows["plain"]["display_name"], rows["plain"]["role"]) == ("", "user")
    mapped = authsvc(tmp_path, cli_env, "import-django", str(django), "--table", "people",
                     "--column", "password=pw", "--column", "username=login",
                     "--column", "email=mail", "--column", "display_name=full_name",
                     "--column", "role=kind")
    assert mapped.returncode == 0, mapped.stderr
    row = sql(settings, "SELECT * FROM users WHERE username = 'mapped'")[0]
    assert (row["display_name"], row["role"], row["legacy_id"]) == ("M. Apped", "admin", 3)


@pytest.mark.parametrize(("args", "message"), [
    (["--table", "nope"], "no table 'nope'"),
    (["--column", "password=missing"], "no column 'missing'"),
    (["--column", "colour=x"], "--column colour: not a field"),
    (["--column", "novalue"], "expected FIELD=COLUMN"),
    (["--batch-size", "0"], "--batch-size must be 1..5000"),
])
def test_the_command_refuses_what_it_cannot_read_in_one_line(
        cli_env: dict[str, str], tmp_path: Path, args: list[str], message: str) -> None:
    django = tmp_path / "plain.sqlite3"
    django_auth_user(django)
    done = authsvc(tmp_path, cli_env, "import-django", str(django), *args)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_missing_django_database_is_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    done = authsvc(tmp_path, cli_env, "import-django", str(tmp_path / "absent.sqlite3"))
    assert done.returncode != 0 and "no such file" in done.stderr
    assert "Traceback" not in done.stderr


def hostile_django(path: Path) -> None:
    """Rows a Django database can hold that authsvc cannot read (SQLite keeps any value)."""
    hashed = USERS["argon2_one"]["password_hash"]
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE auth_user (id, password, username, email, is_active, "
                   "date_joined, is_superuser)")
        db.executemany("INSERT INTO auth_user VALUES (?, ?, ?, ?, 1, ?, 0)", [
            (1, hashed, "good", "good@example.com", "2020-01-01 00:00:00"),
            ("uuid-like", hashed, "textid", "textid@example.com", "2020-01-01 00:00:00"),
            (0, hashed, "zero", "zero@example.com", "2020-01-01 00:00:00"),
            (2, hashed, "baddate", "baddate@example.com", "0000-00-00 00:00:00"),
            (3, hashed, "worse", "worse@example.com", "not a date"),
            (4, "pbkdf2_sha256$1000$s$" + "A" * 400, "longhash", "long@example.com", None),
            (5, None, "nohash", "nohash@example.com", None),
            (6, hashed, None, "nouser@example.com", None),
            (7, hashed, "x" * 200, "longname@example.com", None),
            (8, hashed, "longmail", "a" * 300 + "@example.com", None),
            (9, hashed, "nodate", "nodate@example.com", None)])
        db.execute("CREATE TABLE token_blacklist_outstandingtoken (id, token, created_at, "
                   "expires_at, user_id, jti)")
        db.execute("CREATE TABLE token_blacklist_blacklistedtoken (id, blacklisted_at, token_id)")
        db.executemany("INSERT INTO token_blacklist_outstandingtoken VALUES (?, '', NULL, ?, ?, ?)",
                       [(1, "2999-01-01 00:00:00", 1, "good-jti"),
                        (2, "someday", 1, "bad-date"), (3, "2999-01-01 00:00:00", "x", "bad-id"),
                        (4, "2999-01-01 00:00:00", 1, None)])
        db.executemany("INSERT INTO token_blacklist_blacklistedtoken VALUES (?, NULL, ?)",
                       [(1, 1), (2, 2), (3, 3), (4, 4)])


def test_rows_authsvc_cannot_read_are_skipped_with_a_reason_not_a_crash(
        settings: Settings, tmp_path: Path) -> None:
    django = tmp_path / "hostile.sqlite3"
    hostile_django(django)
    summary = run_import(settings, django, table="auth_user")
    assert summary.imported == 2, summary.lines()  # good, and nodate (joined: now)
    assert dict(summary.skipped) == {"id_invalid": 2, "date_invalid": 2, "hash_unsupported": 2,
                                     "username_invalid": 2, "email_invalid": 1}, summary.lines()
    assert (summary.tokens_revoked, summary.tokens_unreadable) == (1, 3)
    again = run_import(settings, django, table="auth_user")
    assert (again.imported, again.unchanged) == (0, 2)

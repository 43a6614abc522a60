"""Issue 9.5: usernames, emails and passwords are judged on the form that is stored, mailed
to or hashed (after NFKC), never on the raw text; on SQLite and PostgreSQL nothing 500s and
whatever is accepted is valid as stored, fits its columns, and is mailed to exactly."""

from __future__ import annotations

import asyncio
import random
import re
import smtplib
import subprocess
import sys
import unicodedata
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from api import API, PASSWORD, USER, login
from support import Mailbox, free_port, run_worker

from service.app import database
from service.config import Settings
from service.core import identity
from service.store import migrate
from service.store.mail import MailQueue, plain_address
from service.store.sealed_links import link_key
from service.store.users import fold

# Column sizes (service/store/users.py).
COLUMNS = {"username": 150, "username_norm": 600, "email": 254, "email_norm": 1000}

NASTY_EMAILS = {
    # NFKC turns these into comments, second addresses or list separators.
    "a⑴b@example.com": 400,                  # -> a(1)b@: a comment, mailed to ab@
    "x🄁victim@example.com": 400,             # -> x0,victim@: two addresses
    "a⒜b@example.com": 400,                  # -> a(a)b@
    "﹤a@example.com﹥": 400,                  # small < >: an angle-addr
    "a＂b＂@example.com": 400,                 # fullwidth quotes
    "a﹠b；c@example.com": 400,               # ; is a group separator
    "a\u2024b@example.com": 400,              # one dot leader -> "." : fine as such, but ...
    "a\u2025b@example.com": 400,              # two dot leader -> ".." : an empty atom
    "ﷺ" * 8 + "@example.com": 400,            # 20 characters that grow to 156 ...
    "ﷺ" * 14 + "@e.co": 400,                  # ... a local part past 64
    "a" * 60 + "@" + "ﷺ" * 13 + ".com": 400,  # a domain that grows past 254
    "a@example.com\r\nBcc: evil@example.com": 400,
    '"a b"@example.com': 400,
    "a(b)@example.com": 400,
    "a@[127.0.0.1]": 400,
    "a\u200b@example.com": 400,               # zero-width space
    # Compatibility forms of a plain address: accepted, stored plain.
    "ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ": 201,
    "ＢＯＢ@Example.COM": 201,
    "ǆ@example.com": 201,                    # NFKC -> dž
    "Ⅻ.x@example.com": 201,                  # roman numeral -> xii
    "δοκιμή@παράδειγμα.δοκιμή": 201,
}
# \u2024 alone would be a valid "a.b": fix its expectation to what NFKC makes of it.
NASTY_EMAILS["a\u2024b@example.com"] = 201


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    if request.param == "sqlite":
        return settings
    url = str(request.getfixturevalue("empty_postgres"))
    migrate.upgrade(url)
    return settings.replace(database={"url": url})


def stored_rows(settings: Settings) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        db = database(settings)
        await db.connect()
        try:
            rows = await db.fetch_all(sa.text(
                "SELECT username, username_norm, email, email_norm, display_name FROM users"))
            return [dict(row._mapping) for row in rows]
        finally:
            await db.disconnect()

    return asyncio.run(read())


def assert_stored_valid(row: dict[str, Any]) -> None:
    """What was stored passes the rules itself, is its own canonical form, fits its columns,
    and is an address that mail software reads back as exactly itself."""
    email, username = row["email"], row["username"]
    assert identity.email_problem(email) is None and plain_address(email), row
    assert identity.canonical_email(email) == email, row
    assert identity.username_problem(username) is None, row
    assert identity.canonical_username(username) == username, row
    assert row["email_norm"] == fold(email), row
    for column, size in COLUMNS.items():
        assert len(row[column]) <= size, (column, row)
    assert parseaddr(email) == ("", email), row
    assert smtplib.quoteaddr(email) == f"<{email}>", row


def post_register(client: httpx.Client, username: str, email: str) -> httpx.Response:
    return client.post(API + "register/", json={
        "username": username, "email": email, "password": PASSWORD, "password2": PASSWORD})


def test_nasty_emails_are_judged_as_stored(backend_settings: Settings,
                                           make_client: Any) -> None:
    """The table: each address is refused or stored as the plain address NFKC makes of it."""
    client = make_client(backend_settings)
    for number, (email, expected) in enumerate(NASTY_EMAILS.items()):
        response = post_register(client, f"user{number}", email)
        assert response.status_code == expected, (email, response.text)
        if expected == 400:
            assert set(response.json()) == {"email"}, (email, response.text)
    rows = stored_rows(backend_settings)
    assert len(rows) == sum(code == 201 for code in NASTY_EMAILS.values())
    for row in rows:
        assert_stored_valid(row)
    emails = {row["email"] for row in rows}
    assert {"alice@example.com", "bob@example.com", "a.b@example.com"} <= emails
    # Every form of a stored address finds the account, through every way an email enters.
    signed_in = login(client, "ＡＬＩＣＥ@example.com")
    assert signed_in.status_code == 200, signed_in.text


def _compatibility_characters() -> list[str]:
    """Word characters that NFKC changes: each passes a check made on the raw text, and
    many become mail syntax ("⑴" -> "(1)", "🄁" -> "0,") or grow ("ﷺ": 18 characters)."""
    word = re.compile(r"\w")
    return [chr(c) for c in range(0x80, 0x30000)
            if not 0xD800 <= c < 0xE000 and word.fullmatch(chr(c))
            and unicodedata.normalize("NFKC", chr(c)) != chr(c)]


def test_a_random_sweep_never_500s_and_stores_only_valid_text(
        backend_settings: Settings, make_client: Any) -> None:
    """A seeded, hypothesis-style sweep: usernames and emails mixing compatibility
    characters and mail syntax into plain ones. Every answer is 201 or 400 (the autouse
    fixture fails the test on any 500), every stored row is valid as stored, and the login,
    reset and resend paths take every generated identifier without a 500."""
    rng = random.Random(95)
    pool = _compatibility_characters()
    syntax = "()<>[]:;,\"\\@. \t\r\n'`%!"

    def text(length: int) -> str:
        out = []
        for _ in range(length):
            roll = rng.random()
            out.append(rng.choice(pool) if roll < 0.15 else "ﷺ" if roll < 0.16
                       else rng.choice(syntax) if roll < 0.17 else rng.choice("abcxyz09"))
        return "".join(out)

    client = make_client(backend_settings)
    accepted = 0
    for number in range(120):
        local = text(rng.choice([1, 3, 5, 12, 70]))
        domain = (text(rng.choice([3, 10, 60])) if rng.random() < 0.3 else "example") + (
            rng.choice([".com", ".com", ".ｃｏｍ", "．co", ""]))
        email = f"{local}{rng.choice(['@', '＠', '﹫'])}{domain}"
        username = text(rng.choice([1, 8, 149, 160])) if number % 3 else f"plain{number}"
        response = post_register(client, username, email)
        assert response.status_code in (201, 400), (username, email, response.text)
        accepted += response.status_code == 201
        for path, body in (("login/", {"username_or_email": email[:254], "password": "x"}),
                           ("login/", {"username_or_email": username[:254], "password": "x"}),
                           ("password-reset/", {"email": email}),
                           ("verify-email/resend/", {"email": email})):
            answer = client.post(API + path, json=body)
            assert answer.status_code in (200, 400, 401), (path, body, answer.text)
    rows = stored_rows(backend_settings)
    assert len(rows) == accepted >= 10  # the sweep reached the database, not only 400s
    for row in rows:
        assert_stored_valid(row)


@pytest.mark.parametrize("password", ["ｐａｓｓｗｏｒｄ", "ＰＡＳＳＷＯＲＤ１２３",
                                      "ｑｗｅｒｔｙ１２３"])
def test_common_passwords_in_compatibility_forms_are_refused(client: httpx.Client,
                                                             password: str) -> None:
    """The blocklist is checked on what is hashed (NFKC), case-folded: fullwidth
    "ｐａｓｓｗｏｒｄ" would be hashed, and log in, as "password"."""
    response = client.post(API + "register/", json={**USER, "password": password,
                                                     "password2": password})
    assert response.status_code == 400, response.text
    assert "This password is too common." in response.json()["password"]


def test_password_length_is_judged_on_what_is_hashed(client: httpx.Client) -> None:
    """Eight conjoining jamo are four syllables once normalised: too short. A password
    change is judged by the same rules."""
    jamo = "\u1100\u1161" * 4  # NFKC: 가가가가
    response = client.post(API + "register/", json={**USER, "password": jamo,
                                                     "password2": jamo})
    assert response.status_code == 400 and "too short" in response.json()["password"][0]
    tokens = client.post(API + "register/", json=USER).json()
    change = client.post(API + "password/change/", headers={
        "Authorization": f"Bearer {tokens['access']}"}, json={
        "old_password": USER["password"], "password": "ｐａｓｓｗｏｒｄ",
        "password2": "ｐａｓｓｗｏｒｄ"})
    assert change.status_code == 400 and "too common" in change.json()["password"][0]


def test_existing_passwords_still_log_in_in_any_compatibility_form(client: httpx.Client) -> None:
    """What is hashed is unchanged (NFKC of the password, as since the first release): a
    password registered fullwidth logs in typed plain, and the other way round."""
    fancy = "ｃｏｒｒｅｃｔ ｈｏｒｓｅ ｂａｔｔｅｒｙ ９"
    created = client.post(API + "register/", json={**USER, "password": fancy,
                                                    "password2": fancy})
    assert created.status_code == 201, created.text
    for typed in (fancy, "correct horse battery 9"):
        signed_in = login(client, "alice", typed)
        assert signed_in.status_code == 200, signed_in.text


class Envelopes(Mailbox):
    """The SMTP sink, recording each message's envelope recipients too."""

    def __init__(self) -> None:
        super().__init__()
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's hook)
        self.recipients.append(list(envelope.rcpt_tos))
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("to", ["a(1)b@example.com", "x0,victim@example.com",
                                "x@example.com\r\nBcc: evil@example.com",
                                '"a b"@example.com', "<a@example.com>",
                                "a@example.com, evil@example.com"])
def test_the_mailer_sends_only_to_plain_addresses(settings: Settings, tmp_path: Path,
                                                  sync_redis: redis.Redis, to: str) -> None:
    """A row stored before the fix (or any job) with such an address: nothing is sent to
    anyone (smtplib read "a(1)b@" as "ab@"); a plain one goes to exactly itself."""
    sink = Envelopes()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = settings.replace(smtp={"port": port})
        queue = MailQueue(settings, sync_redis, link_key(settings.jwt.secret))
        asyncio.run(queue.send_password_reset(to, "alice", "https://x.example/r?token=t"))
        asyncio.run(queue.send_password_reset("ok@example.com", "alice",
                                              "https://x.example/r?token=t"))
        done = run_worker(settings, tmp_path)
        assert done.returncode == 0, done.stderr
    finally:
        controller.stop()
    assert sink.recipients == [["ok@example.com"]], done.stderr
    assert "not a plain email address" in done.stderr


@pytest.mark.parametrize(("args", "problem"), [
    (["a⑴b", "a⑴b@example.com"], "valid email"),
    (["bob", "x🄁victim@example.com"], "valid email"),
    (["bob", "ﷺ" * 14 + "@example.com"], "no more than 254 characters"),
    (["bob", "bob@example.com", "--display-name", "d" * 151], "display name"),
    (["bob", "bob@example.com", "--role", "r" * 65], "role"),
])
def test_create_user_applies_the_same_rules(tmp_path: Path, settings: Settings,
                                            args: list[str], problem: str) -> None:
    """`authsvc create-user`: the same judgement as register/, and nothing past a column."""
    env = {"PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "AUTH_DATABASE_URL": settings.database.url, "AUTH_DATA_DIR": str(tmp_path / "d"),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "service.cli", "create-user", *args,
                           "--password-stdin"], input=PASSWORD + "\n", env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and problem in done.stderr, done.stderr
    assert stored_rows(settings) == []

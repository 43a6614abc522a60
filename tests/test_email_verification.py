"""Email verification (issue 3; ASVS V2.5 / OWASP Forgot Password cheat sheet for the token):
a link mailed at registration, verify-email/ and verify-email/resend/, and
[auth] require_email_verification."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from api import API, USER, login, register
from rq import Queue
from support import run_worker, wait_for_jobs, wait_for_mail_count

from service.app import database
from service.config import Rate, Settings
from service.core.passwords import PasswordHasher
from service.http.inputs import register_input
from service.store.keys import RedisKeys
from service.store.mail import queue_name
from service.store.users import UserStore

SUBJECT = "Confirm your email address"


def verifying(settings: Settings, *, required: bool = False) -> Settings:
    return settings.replace(auth={"verify_emails": True, "require_email_verification": required,
                                  "verify_url_template": "https://app.example/verify?t={token}"})


def mailed_token(settings: Settings, mailbox: Any, tmp_path: Path) -> str:
    done = run_worker(settings, tmp_path)
    assert done.returncode == 0, done.stderr
    mails = [m for m in mailbox.messages if m["Subject"] == SUBJECT]
    assert mails, [m["Subject"] for m in mailbox.messages]
    text = mails[-1].get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"https://app\.example/verify\?\S+", text)
    assert link, text
    return parse_qs(urlparse(link.group(0)).query)["t"][0]


def test_required_verification_gates_login(settings: Settings, make_client: Any,
                                           smtp_server: Any, tmp_path: Path) -> None:
    """Issue 3: register answers {user} only; login is 403 email_not_verified until verified."""
    settings = verifying(settings, required=True)
    client = make_client(settings)
    created = client.post(API + "register/", json=USER)
    assert created.status_code == 201 and set(created.json()) == {"user"}
    refused = login(client)
    assert refused.status_code == 403
    assert refused.json() == {"detail": refused.json()["detail"], "code": "email_not_verified"}
    wrong = login(client, "alice", "nope")
    assert wrong.status_code == 401  # the 403 is said only to someone who knows the password
    token = mailed_token(settings, smtp_server[0], tmp_path)
    verified = client.post(API + "verify-email/", json={"token": token})
    assert verified.status_code == 200 and verified.json() == {"message": "Email verified"}
    assert login(client).status_code == 200
    again = client.post(API + "verify-email/", json={"token": token})
    assert again.status_code == 400 and set(again.json()) == {"token"}


def test_verification_is_mailed_but_not_required_by_default(
        settings: Settings, make_client: Any, smtp_server: Any, tmp_path: Path) -> None:
    """Default: a link is mailed, tokens are issued at once, login works unverified."""
    settings = verifying(settings)
    client = make_client(settings)
    assert set(register(client)) == {"user", "refresh", "access"}
    assert login(client).status_code == 200
    assert mailed_token(settings, smtp_server[0], tmp_path)


def test_resend_answers_alike_and_mails_only_the_unverified(
        settings: Settings, make_client: Any, smtp_server: Any, tmp_path: Path) -> None:
    """ASVS V2.5.2-style: the answer does not tell whether the email is registered."""
    mailbox, _ = smtp_server
    settings = verifying(settings, required=True)
    client = make_client(settings)
    client.post(API + "register/", json=USER)
    first = mailed_token(settings, mailbox, tmp_path)
    known = client.post(API + "verify-email/resend/", json={"email": "alice@example.com"})
    unknown = client.post(API + "verify-email/resend/", json={"email": "ghost@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert known.json() == unknown.json()
    second = mailed_token(settings, mailbox, tmp_path)
    assert second != first
    assert client.post(API + "verify-email/", json={"token": second}).status_code == 200
    before = len(mailbox.messages)
    client.post(API + "verify-email/resend/", json={"email": "alice@example.com"})
    run_worker(settings, tmp_path)
    assert len(mailbox.messages) == before  # verified: nothing more to send


def test_verification_keys_are_hashed_and_expire(settings: Settings, make_client: Any,
                                                 sync_redis: Any, smtp_server: Any,
                                                 tmp_path: Path) -> None:
    """Redis conventions: the token is stored only as a hash, with the configured TTL."""
    settings = verifying(settings)
    client = make_client(settings)
    register(client)
    token = mailed_token(settings, smtp_server[0], tmp_path)
    keys = list(sync_redis.scan_iter(match=RedisKeys(settings.redis.prefix).every("verify")))
    assert len(keys) == 1 and token.encode() not in keys[0]
    assert 0 < sync_redis.ttl(keys[0]) <= settings.auth.email_verification_ttl


def test_bad_verification_tokens_are_400(client: httpx.Client) -> None:
    """API.md errors: bad input is a 400 on the field."""
    for body in ({"token": "nope"}, {"token": ""}, {}, {"token": 5}):
        response = client.post(API + "verify-email/", json=body)
        assert response.status_code == 400 and set(response.json()) == {"token"}, body


def test_a_resend_flood_for_one_address_answers_alike_and_mails_at_most_the_cap(
        settings: Settings, make_client: Any, sync_redis: Any) -> None:
    """Issue 9 (1), as for password-reset/: verify-email/resend/ is limited per client IP
    only (a flood for one address used to get its owner a 429); the mails to one address
    share [password_reset] max_mails_per_hour with reset links, the one at registration
    included, and past it nothing more is sent while every request still gets 200."""
    settings = verifying(settings, required=True).replace(
        rate_limit={"enabled": True, "password_reset": Rate(5, 3600)},
        server={"trusted_proxies": ("127.0.0.1",)})
    client = make_client(settings)
    assert client.post(API + "register/", json=USER).status_code == 201
    codes = [client.post(API + "verify-email/resend/", json={"email": "alice@example.com"},
                         headers={"X-Forwarded-For": f"10.30.0.{i}"}).status_code
             for i in range(8)]
    assert codes == [200] * 8
    wait_for_mail_count(settings, sync_redis, "alice@example.com", 9)
    wait_for_jobs(settings, sync_redis, 3)  # a task enqueues its mail after counting it
    assert Queue(queue_name(settings), connection=sync_redis).count == 3


def _crashed_registration(settings: Settings) -> None:
    """What `kill -9` right after the INSERT of register/ leaves behind: the row as register
    writes it (parsed by the same schema, hashed by the same hasher), and nothing else: no
    cached row, no session, no verification key, no mail job, and the client got no answer."""
    data = register_input(dict(USER), settings)
    assert not data.errors
    hasher = PasswordHasher(settings.passwords)

    async def insert() -> None:
        db = database(settings)
        await db.connect()
        try:
            await UserStore(db).create(username=data.username, email=data.email,
                                       display_name=data.display_name, role=data.role,
                                       password_hash=hasher.hash_sync(data.password))
        finally:
            await db.disconnect()

    asyncio.run(insert())
    hasher.close()


@pytest.mark.parametrize("required", [True, False])
def test_a_registration_killed_before_its_mail_is_recovered(
        settings: Settings, make_client: Any, smtp_server: Any, tmp_path: Path,
        required: bool) -> None:
    """Issue 9.11 (README, *Registration*): a registration killed after its row was written
    and before it answered or queued its mail, with the default rate limits on. Its retry is
    told the name is taken; verify-email/resend/ mails a working link (read from the real
    SMTP sink), and the account is whole: verified, and logging in with its password."""
    mailbox, _ = smtp_server
    settings = verifying(settings, required=required).replace(rate_limit={"enabled": True})
    client = make_client(settings)
    _crashed_registration(settings)
    retry = client.post(API + "register/", json=USER)
    assert retry.status_code == 400 and set(retry.json()) == {"username", "email"}
    assert login(client).status_code == (403 if required else 200)
    resent = client.post(API + "verify-email/resend/", json={"email": USER["email"]})
    assert resent.status_code == 200, resent.text
    token = mailed_token(settings, mailbox, tmp_path)
    assert client.post(API + "verify-email/", json={"token": token}).status_code == 200
    assert login(client).status_code == 200

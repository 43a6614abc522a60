"""Email verification (issue 3; ASVS V2.5 / OWASP Forgot Password cheat sheet for the token):
a link mailed at registration, verify-email/ and verify-email/resend/, and
[auth] require_email_verification."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from rq import Queue
from support import USER, register, run_worker

from service.config import Rate, Settings

API = "/api/v1/auth/"
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


def login(client: httpx.Client) -> httpx.Response:
    return client.post(API + "login/", json={"username_or_email": "alice",
                                             "password": USER["password"]})


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
    wrong = client.post(API + "login/", json={"username_or_email": "alice", "password": "nope"})
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
    keys = list(sync_redis.scan_iter(match=f"{settings.redis.prefix}verify:*"))
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
    key = f"{settings.redis.prefix}mails:" + hashlib.sha256(b"alice@example.com").hexdigest()[:32]
    deadline = time.monotonic() + 10
    while int(sync_redis.get(key) or 0) < 9:  # every background task has run
        assert time.monotonic() < deadline, "the background tasks never ran"
        time.sleep(0.02)
    assert Queue(settings.worker.queue, connection=sync_redis).count == 3

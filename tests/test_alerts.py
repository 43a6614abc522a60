"""Security alerts by email (issue 3): a sign-in from a new device and refresh-token reuse,
each with a "this wasn't me" link acted on only by a confirming POST (never the GET a mail
scanner makes), which ends every session and starts a password reset."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from api import API, bearer, login, register
from support import run_worker, wait_for_mail_count

from service.config import Settings


def alerting(settings: Settings) -> Settings:
    return settings.replace(alerts={"enabled": True,
                                    "url_template": "https://app.example/not-me?token={token}"})


def deliver(settings: Settings, tmp_path: Path) -> None:
    done = run_worker(settings, tmp_path)
    assert done.returncode == 0, done.stderr


def link_token(message: Any) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"https://app\.example/not-me\?\S+", text)
    assert link, text
    return parse_qs(urlparse(link.group(0)).query)["token"][0]


# Every sign-in here comes from one browser the alerts name.
EVIL = {"User-Agent": "Evil/1.0"}


def test_a_new_device_sign_in_is_mailed_and_a_known_one_is_not(
        settings: Settings, make_client: Any, smtp_server: Any, tmp_path: Path) -> None:
    """ASVS V2.2.3: users are notified of sign-ins from new devices."""
    mailbox, _ = smtp_server
    client = make_client(alerting(settings))
    register(client)
    first = login(client, headers=EVIL)
    deliver(settings, tmp_path)
    alerts = [m for m in mailbox.messages if m["Subject"] == "New sign-in to your account"]
    assert len(alerts) == 1 and alerts[0]["To"] == "alice@example.com"
    assert "Evil/1.0" in alerts[0].get_body(preferencelist=("plain",)).get_content()
    assert login(client, device=first.json()["device_token"], headers=EVIL).status_code == 200
    deliver(settings, tmp_path)
    assert sum(m["Subject"] == "New sign-in to your account" for m in mailbox.messages) == 1


def test_not_me_ends_every_session_and_mails_a_reset(
        settings: Settings, make_client: Any, smtp_server: Any, tmp_path: Path) -> None:
    """Issue 3: the confirming POST ends every session and starts a password reset; the link
    is single use and GET does nothing (mail scanners)."""
    mailbox, _ = smtp_server
    client = make_client(alerting(settings))
    mine = register(client)
    login(client, headers=EVIL)
    deliver(settings, tmp_path)
    token = link_token(mailbox.messages[-1])
    assert client.get(API + "security/not-me/", params={"token": token}).status_code == 405
    assert client.get(API + "profile/", headers=bearer(mine["access"])).status_code == 200
    done = client.post(API + "security/not-me/", json={"token": token})
    assert done.status_code == 200 and set(done.json()) == {"message"}
    gone = client.get(API + "profile/", headers=bearer(mine["access"]))
    assert gone.status_code == 401 and gone.json()["reason"] == "session_ended"
    deliver(settings, tmp_path)
    assert mailbox.messages[-1]["Subject"] == "Reset your password"
    again = client.post(API + "security/not-me/", json={"token": token})
    assert again.status_code == 400 and set(again.json()) == {"token"}


def test_refresh_token_reuse_is_mailed(settings: Settings, make_client: Any,
                                       smtp_server: Any, tmp_path: Path) -> None:
    """OWASP JWT cheat sheet / RFC 9700: reuse of a rotated refresh token (theft) is reported."""
    mailbox, _ = smtp_server
    now = [2_000_000_000.0]
    client = make_client(alerting(settings).replace(jwt={"rotate_refresh_tokens": True}),
                         clock=lambda: now[0])
    original = register(client)["refresh"]
    assert client.post(API + "token/refresh/", json={"refresh": original}).status_code == 200
    now[0] += settings.jwt.rotation_grace + 1
    stolen = client.post(API + "token/refresh/", json={"refresh": original})
    assert stolen.status_code == 401 and stolen.json()["reason"] == "token_reused"
    deliver(settings, tmp_path)
    subjects = [m["Subject"] for m in mailbox.messages]
    assert "Your session was ended: possible token theft" in subjects
    theft = mailbox.messages[subjects.index("Your session was ended: possible token theft")]
    assert link_token(theft)


def test_a_logout_racing_a_rotation_is_no_theft_alert(settings: Settings, make_client: Any,
                                                       smtp_server: Any, tmp_path: Path) -> None:
    """Issue 11 review: a tab signing out with the token another tab rotated inside
    rotation_grace is the same browser, as refresh/ holds: no "possible token theft" mail."""
    mailbox, _ = smtp_server
    now = [2_000_000_000.0]
    client = make_client(alerting(settings).replace(jwt={"rotate_refresh_tokens": True}),
                         clock=lambda: now[0])
    original = register(client)["refresh"]
    assert client.post(API + "token/refresh/", json={"refresh": original}).status_code == 200
    now[0] += 1
    assert client.post(API + "logout/", json={"refresh_token": original}).status_code == 400
    deliver(settings, tmp_path)
    subjects = [m["Subject"] for m in mailbox.messages]
    assert "Your session was ended: possible token theft" not in subjects, subjects


def test_alerts_off_send_nothing(client: httpx.Client, settings: Settings, smtp_server: Any,
                                 tmp_path: Path) -> None:
    """[alerts] enabled = false: no alert mail."""
    mailbox, _ = smtp_server
    register(client)
    login(client, headers=EVIL)
    deliver(settings, tmp_path)
    assert mailbox.messages == []


def test_not_me_mails_its_reset_even_past_the_mail_cap(
        settings: Settings, make_client: Any, smtp_server: Any, sync_redis: Any,
        tmp_path: Path) -> None:
    """Issue 9 (1): a flood of reset requests must not silence the owner's way out: the
    reset mailed by security/not-me/ (whose single-use token came from that mailbox) is not
    counted against [password_reset] max_mails_per_hour, and not-me is limited per client IP
    only (its token is a secret nobody else can flood)."""
    mailbox, _ = smtp_server
    settings = alerting(settings).replace(password_reset={"max_mails_per_hour": 1})
    client = make_client(settings)
    register(client)
    login(client, headers=EVIL)
    for _ in range(3):
        assert client.post(API + "password-reset/",
                           json={"email": "alice@example.com"}).status_code == 200
    wait_for_mail_count(settings, sync_redis, "alice@example.com", 3)
    deliver(settings, tmp_path)
    resets = [m for m in mailbox.messages if m["Subject"] == "Reset your password"]
    assert len(resets) == 1
    alert = next(m for m in mailbox.messages if m["Subject"] == "New sign-in to your account")
    assert client.post(API + "security/not-me/",
                       json={"token": link_token(alert)}).status_code == 200
    deliver(settings, tmp_path)
    assert sum(m["Subject"] == "Reset your password" for m in mailbox.messages) == 2

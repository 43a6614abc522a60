"""The walk-through a frontend makes: register -> profile -> refresh -> logout -> reset by email."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from api import API, bearer, login, register
from support import reset_token_from, run_worker

from service.config import Settings


def test_walk_through(client: httpx.Client, settings: Settings, smtp_server: Any,
                      tmp_path: Path) -> None:
    mailbox, _ = smtp_server
    created = register(client)
    assert created["user"] == {"username": "alice", "email": "alice@example.com",
                               "display_name": "Alice"}

    profile = client.get(API + "profile/", headers=bearer(created["access"]))
    assert profile.status_code == 200
    assert profile.json()["username"] == "alice"
    assert profile.headers["cache-control"] == "no-store"

    refreshed = client.post(API + "token/refresh/", json={"refresh": created["refresh"]})
    assert refreshed.status_code == 200 and set(refreshed.json()) == {"access"}
    renewed = refreshed.json()["access"]
    assert client.get(API + "profile/", headers=bearer(renewed)).status_code == 200

    logout = client.post(API + "logout/", json={"refresh_token": created["refresh"]})
    assert logout.status_code == 205 and logout.content == b""
    again = client.post(API + "token/refresh/", json={"refresh": created["refresh"]})
    assert again.status_code == 401 and again.json()["reason"] == "token_revoked"
    twice = client.post(API + "logout/", json={"refresh_token": created["refresh"]})
    assert twice.status_code == 400

    signed_in = login(client, "ALICE@example.com")
    assert signed_in.status_code == 200
    old_refresh = signed_in.json()["refresh"]

    asked = client.post(API + "password-reset/", json={"email": "alice@example.com"})
    assert asked.status_code == 200 and asked.json() == {"message": "Password reset link sent"}
    worker = run_worker(settings, tmp_path)
    assert worker.returncode == 0, worker.stderr
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert message["To"] == "alice@example.com"
    token = reset_token_from(message)
    assert token not in worker.stderr + worker.stdout  # the link is never logged

    new_password = "a brand new passphrase"
    confirmed = client.post(API + "password-reset/confirm/", json={
        "token": token, "password": new_password, "password2": new_password})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() == {"message": "Password has been reset"}

    stale = client.post(API + "token/refresh/", json={"refresh": old_refresh})
    assert stale.status_code == 401 and stale.json()["reason"] == "password_changed"
    assert login(client).status_code == 401
    assert login(client, "alice", new_password).status_code == 200
    reused = client.post(API + "password-reset/confirm/", json={
        "token": token, "password": "yet another passphrase",
        "password2": "yet another passphrase"})
    assert reused.status_code == 400 and "token" in reused.json()

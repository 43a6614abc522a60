"""The second factor as tests call it (issue 13): enrol, the MFA sign-in step, reauth/."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pyotp
from api import API, PASSWORD, USER, bearer, login

MFA = API + "mfa/"
TOTP = MFA + "totp/"
CONFIRM = TOTP + "confirm/"
CODES = MFA + "recovery-codes/"
LOGIN_MFA = API + "login/mfa/"
REAUTH = API + "reauth/"


def code_at(secret: str, moment: float) -> str:
    """The authenticator's code at `moment`, as the user's phone computes it."""
    return pyotp.TOTP(secret).at(moment)


def enrol(client: httpx.Client, access: str) -> str:
    """POST mfa/totp/: the new secret."""
    started = client.post(TOTP, headers=bearer(access))
    assert started.status_code == 201, started.text
    return str(started.json()["secret"])


def enrolled(client: httpx.Client, access: str, now: float | None = None) -> dict[str, Any]:
    """Enrol and confirm an authenticator with its code at `now` (the real clock by default):
    {secret, recovery_codes, access (the session's new token), at (the moment used)}."""
    secret = enrol(client, access)
    at = time.time() if now is None else now
    confirmed = client.post(CONFIRM, headers=bearer(access), json={"code": code_at(secret, at)})
    assert confirmed.status_code == 200, confirmed.text
    return {"secret": secret, "at": at, **confirmed.json()}


def password_step(client: httpx.Client, who: str = USER["username"],
                  password: str = PASSWORD, **request: Any) -> dict[str, Any]:
    """login/ for an account with a second factor: its answer, checked for shape."""
    response = login(client, who, password, **request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"mfa_required", "mfa_token", "methods"}, body
    assert body["mfa_required"] is True
    return body  # type: ignore[no-any-return]


def second_step(client: httpx.Client, mfa_token: str, code: str, method: str = "totp",
                **request: Any) -> httpx.Response:
    return client.post(LOGIN_MFA, json={"mfa_token": mfa_token, "method": method, "code": code},
                       **request)


def reauth(client: httpx.Client, access: str, **body: str) -> httpx.Response:
    return client.post(REAUTH, headers=bearer(access), json=body)

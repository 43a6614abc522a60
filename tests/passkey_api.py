"""Passkeys as tests call them (issue 14): the relying party, its fixtures (a pytest plugin:
tests/conftest.py), registering a software authenticator and signing in with it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api import API, bearer
from webauthn_forge import SoftAuthenticator

from service.config import Settings

ORIGIN = "https://app.example"
RP = "app.example"
REG_OPTIONS = API + "webauthn/register/options/"
REGISTER = API + "webauthn/register/"
CREDENTIALS = API + "webauthn/credentials/"
LOGIN_OPTIONS = API + "webauthn/login/options/"
PASSKEY_LOGIN = API + "webauthn/login/"
MFA_OPTIONS = API + "login/mfa/webauthn/options/"
REAUTH_OPTIONS = API + "reauth/webauthn/options/"
T0 = 1_800_000_000.0


@pytest.fixture
def rp_settings(settings: Settings) -> Settings:
    return settings.replace(webauthn={"rp_id": RP, "origins": (ORIGIN,)})


@pytest.fixture
def rp_site(rp_settings: Settings, make_client: Any) -> httpx.Client:
    return make_client(rp_settings)  # type: ignore[no-any-return]


def add_passkey(client: httpx.Client, access: str, key: SoftAuthenticator,
                name: str = "Laptop") -> dict[str, Any]:
    options = client.post(REG_OPTIONS, headers=bearer(access))
    assert options.status_code == 200, options.text
    made = client.post(REGISTER, headers=bearer(access),
                       json={"credential": key.create(options.json()["publicKey"]),
                             "name": name})
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


def passkey_sign_in(client: httpx.Client, key: SoftAuthenticator,
                    **forgery: Any) -> httpx.Response:
    options = client.post(LOGIN_OPTIONS).json()["publicKey"]
    return client.post(PASSKEY_LOGIN, json={"credential": key.get(options, **forgery)})


def assert_refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "The passkey was refused.", "code": "webauthn_failed",
                               "reason": reason}


def platform() -> SoftAuthenticator:
    return SoftAuthenticator(RP, ORIGIN)


def security_key() -> SoftAuthenticator:
    return SoftAuthenticator(RP, ORIGIN, resident=False, user_verifying=False)

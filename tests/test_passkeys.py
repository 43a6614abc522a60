"""Passkeys (issue 14) through the API, with a software authenticator making real WebAuthn
structures: registration, sign-in without a username, the second factor, step-up,
passwordless accounts, and each refusal with its own reason (the forgeries a browser would
never send). The browser's own path is tests/test_browser_passkeys.py."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
import redis
from api import (
    API,
    assert_field_errors,
    bearer,
    claims,
    logged_in,
    login,
    make_admin,
    register,
)
from mfa_api import MFA, enrolled, password_step, reauth
from support import Clock, sql
from webauthn_forge import SoftAuthenticator, b64

from service.config import Settings
from service.store.keys import RedisKeys

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
def site(rp_settings: Settings, make_client: Any) -> httpx.Client:
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


# -- registration ----------------------------------------------------------------------------
def test_register_a_passkey_and_get_recovery_codes_with_the_first_factor(
        site: httpx.Client, rp_settings: Settings) -> None:
    access = register(site)["access"]
    options = site.post(REG_OPTIONS, headers=bearer(access)).json()["publicKey"]
    assert options["rp"] == {"id": RP, "name": "authsvc"}
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    key = platform()
    made = site.post(REGISTER, headers=bearer(access),
                     json={"credential": key.create(options), "name": "My laptop"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert set(body) == {"credential", "recovery_codes", "access"}
    assert body["credential"]["id"] == key.id and body["credential"]["name"] == "My laptop"
    assert body["credential"]["discoverable"] is True
    assert body["credential"]["transports"] == ["internal"]
    assert len(body["recovery_codes"]) == 10
    assert "webauthn" in claims(rp_settings, body["access"])["amr"]
    second = add_passkey(site, access, security_key(), "Key")
    assert second["recovery_codes"] == []  # not the first factor any more
    listed = site.get(CREDENTIALS, headers=bearer(access)).json()
    assert [p["name"] for p in listed] == ["My laptop", "Key"]
    status = site.get(MFA, headers=bearer(access)).json()
    assert status["methods"] == ["webauthn", "recovery_code"]
    assert status["webauthn"] == {"credentials": 2} and status["has_password"] is True


def test_an_options_challenge_registers_once_and_only_its_user(site: httpx.Client) -> None:
    alice = register(site)["access"]
    bob = register(site, username="bob", email="bob@example.com")["access"]
    options = site.post(REG_OPTIONS, headers=bearer(alice)).json()["publicKey"]
    credential = platform().create(options)
    stolen = site.post(REGISTER, headers=bearer(bob), json={"credential": credential})
    assert_field_errors(stolen, "credential")  # the challenge was alice's, and is now spent
    again = site.post(REGISTER, headers=bearer(alice), json={"credential": credential})
    assert_field_errors(again, "credential")


def test_a_wrong_origin_registration_is_refused(site: httpx.Client) -> None:
    access = register(site)["access"]
    options = site.post(REG_OPTIONS, headers=bearer(access)).json()["publicKey"]
    evil = SoftAuthenticator(RP, "https://evil.example").create(options)
    assert_field_errors(site.post(REGISTER, headers=bearer(access),
                                  json={"credential": evil}), "credential")


def test_rename_and_delete(site: httpx.Client) -> None:
    access = register(site)["access"]
    key = platform()
    add_passkey(site, access, key)
    add_passkey(site, access, security_key())
    renamed = site.patch(f"{CREDENTIALS}{key.id}/", headers=bearer(access),
                         json={"name": "Work laptop"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Work laptop"
    other = register(site, username="bob", email="bob@example.com")["access"]
    assert site.patch(f"{CREDENTIALS}{key.id}/", headers=bearer(other),
                      json={"name": "x"}).status_code == 404
    assert site.delete(f"{CREDENTIALS}{key.id}/", headers=bearer(other)).status_code == 404
    assert site.delete(f"{CREDENTIALS}{key.id}/", headers=bearer(access)).status_code == 204
    assert_refused(passkey_sign_in(site, key), "unknown_credential")


# -- sign in without a username ---------------------------------------------------------------
def test_sign_in_without_a_username(site: httpx.Client, rp_settings: Settings) -> None:
    access = register(site)["access"]
    key = platform()
    add_passkey(site, access, key)
    options = site.post(LOGIN_OPTIONS).json()["publicKey"]
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    signed = site.post(PASSKEY_LOGIN, json={"credential": key.get(options)})
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert set(body) == {"user", "access", "refresh", "device_token"}
    assert body["user"]["username"] == "alice"
    assert claims(rp_settings, body["access"])["amr"] == ["webauthn"]
    assert "authsvc_device" in signed.headers["set-cookie"]
    last_used = site.get(CREDENTIALS, headers=bearer(body["access"])).json()[0]["last_used"]
    assert last_used is not None


@pytest.mark.parametrize("forgery, reason", [
    ({"origin": "https://evil.example"}, "wrong_origin"),
    ({"rp_id": "evil.example"}, "wrong_rp_id"),
    ({"verified": False}, "user_verification_missing"),
    ({"sign_count": 0}, "sign_count_regressed"),
    ({"challenge": b64(b"a challenge nobody handed out")}, "challenge_invalid"),
    ({"kind": "webauthn.create"}, "malformed"),
])
def test_each_forgery_is_refused_with_its_reason(site: httpx.Client, forgery: dict[str, Any],
                                                 reason: str) -> None:
    access = register(site)["access"]
    key = platform()
    add_passkey(site, access, key)
    assert passkey_sign_in(site, key).status_code == 200  # the count is 1 now
    assert_refused(passkey_sign_in(site, key, **forgery), reason)


def test_a_replayed_assertion_and_a_broken_signature_are_refused(site: httpx.Client) -> None:
    access = register(site)["access"]
    key = platform()
    add_passkey(site, access, key)
    options = site.post(LOGIN_OPTIONS).json()["publicKey"]
    assertion = key.get(options)
    assert site.post(PASSKEY_LOGIN, json={"credential": assertion}).status_code == 200
    assert_refused(site.post(PASSKEY_LOGIN, json={"credential": assertion}),
                   "challenge_invalid")
    forged = key.get(site.post(LOGIN_OPTIONS).json()["publicKey"])
    forged["response"]["signature"] = b64(b"\x30\x06\x02\x01\x01\x02\x01\x01")
    assert_refused(site.post(PASSKEY_LOGIN, json={"credential": forged}), "bad_signature")
    stranger = platform()
    assert_refused(passkey_sign_in(site, stranger), "unknown_credential")


@pytest.mark.parametrize("body", [{}, {"credential": "x"}, {"credential": {}},
                                  {"credential": {"id": 1, "response": []}}])
def test_a_bad_passkey_body_is_a_clean_4xx(site: httpx.Client, body: Any) -> None:
    answer = site.post(PASSKEY_LOGIN, json=body)
    assert answer.status_code in (400, 401), answer.text
    if answer.status_code == 401:
        assert answer.json()["reason"] == "malformed"


def test_a_cloned_authenticator_racing_with_one_count_wins_once(site: httpx.Client) -> None:
    access = register(site)["access"]
    key = platform()
    add_passkey(site, access, key)
    assertions = [key.get(site.post(LOGIN_OPTIONS).json()["publicKey"], sign_count=5)
                  for _ in range(8)]
    barrier = threading.Barrier(8)
    answers: list[int] = []

    def go(assertion: dict[str, Any]) -> None:
        barrier.wait()
        answers.append(site.post(PASSKEY_LOGIN, json={"credential": assertion}).status_code)

    threads = [threading.Thread(target=go, args=(a,)) for a in assertions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200] + [401] * 7, answers


def test_challenges_are_hashed_single_use_keys_with_a_ttl(site: httpx.Client,
                                                         rp_settings: Settings,
                                                         sync_redis: redis.Redis) -> None:
    challenge = site.post(LOGIN_OPTIONS).json()["publicKey"]["challenge"]
    key = RedisKeys(rp_settings.redis.prefix).webauthn(challenge)
    assert challenge not in key and 0 < sync_redis.ttl(key) <= 300
    assert sync_redis.get(key) == b"login"


# -- as a second factor -----------------------------------------------------------------------
def test_a_security_key_as_the_second_factor(site: httpx.Client,
                                             rp_settings: Settings) -> None:
    access = register(site)["access"]
    key = security_key()
    add_passkey(site, access, key)
    step = password_step(site)
    assert step["methods"] == ["webauthn", "recovery_code"]
    options = site.post(MFA_OPTIONS, json={"mfa_token": step["mfa_token"]}).json()["publicKey"]
    assert [c["id"] for c in options["allowCredentials"]] == [key.id]
    wrong = site.post(API + "login/mfa/", json={
        "mfa_token": step["mfa_token"], "method": "webauthn",
        "credential": key.get(options, origin="https://evil.example")})
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "mfa_code_invalid" and wrong.json()["reason"] == "wrong_origin"
    options = site.post(MFA_OPTIONS, json={"mfa_token": step["mfa_token"]}).json()["publicKey"]
    signed = site.post(API + "login/mfa/", json={
        "mfa_token": step["mfa_token"], "method": "webauthn", "credential": key.get(options)})
    assert signed.status_code == 200, signed.text
    assert claims(rp_settings, signed.json()["access"])["amr"] == ["pwd", "webauthn"]
    dead = site.post(MFA_OPTIONS, json={"mfa_token": step["mfa_token"]})
    assert dead.status_code == 401 and dead.json()["code"] == "mfa_token_invalid"


def test_a_security_key_cannot_sign_in_without_a_password(site: httpx.Client) -> None:
    """No user verification: it is a second factor only."""
    access = register(site)["access"]
    key = security_key()
    add_passkey(site, access, key)
    assert_refused(passkey_sign_in(site, key), "user_verification_missing")


def test_an_mfa_challenge_serves_only_its_own_sign_in(site: httpx.Client) -> None:
    access = register(site)["access"]
    key = platform()
    add_passkey(site, access, key)
    first, second = password_step(site), password_step(site)
    options = site.post(MFA_OPTIONS, json={"mfa_token": first["mfa_token"]}).json()["publicKey"]
    crossed = site.post(API + "login/mfa/", json={
        "mfa_token": second["mfa_token"], "method": "webauthn", "credential": key.get(options)})
    assert crossed.status_code == 401 and crossed.json()["reason"] == "challenge_invalid"
    # Nor the username-less sign-in: a challenge is for what it was handed out for.
    options = site.post(MFA_OPTIONS, json={"mfa_token": first["mfa_token"]}).json()["publicKey"]
    assert_refused(site.post(PASSKEY_LOGIN, json={"credential": key.get(options)}),
                   "challenge_invalid")


def test_step_up_with_a_passkey(rp_settings: Settings, make_client: Any) -> None:
    clock = Clock(T0)
    client = make_client(rp_settings, clock=clock)
    access = register(client)["access"]
    key = platform()
    add_passkey(client, access, key)
    signed = client.post(PASSKEY_LOGIN, json={"credential": key.get(
        client.post(LOGIN_OPTIONS).json()["publicKey"])}).json()
    clock.now += rp_settings.mfa.step_up_max_age + 1
    stale = client.delete(f"{CREDENTIALS}{key.id}/", headers=bearer(signed["access"]))
    assert stale.status_code == 403 and stale.json()["methods"] == [
        "password", "webauthn", "recovery_code"]
    options = client.post(REAUTH_OPTIONS, headers=bearer(signed["access"])).json()["publicKey"]
    again = reauth(client, signed["access"], method="webauthn")  # no credential: 400
    assert_field_errors(again, "credential")
    renewed = client.post(API + "reauth/", headers=bearer(signed["access"]),
                          json={"method": "webauthn", "credential": key.get(options)})
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["auth_time"] == int(clock.now)


def test_registering_wants_a_recent_sign_in(rp_settings: Settings, make_client: Any) -> None:
    clock = Clock(T0)
    client = make_client(rp_settings, clock=clock)
    access = register(client)["access"]
    clock.now += rp_settings.mfa.step_up_max_age + 1
    refused = client.post(REG_OPTIONS, headers=bearer(access))
    assert refused.status_code == 403 and refused.json()["code"] == "step_up_required"


# -- passwordless -----------------------------------------------------------------------------
def test_the_password_goes_only_with_a_way_back_in(site: httpx.Client,
                                                   rp_settings: Settings) -> None:
    access = register(site)["access"]
    key = platform()
    fresh = add_passkey(site, access, key)["access"]
    sql(rp_settings, "DELETE FROM mfa_recovery_codes")  # one passkey and no codes: not yet
    refused = site.delete(API + "password/", headers=bearer(fresh))
    assert_field_errors(refused, "non_field_errors")
    spare = platform()
    add_passkey(site, fresh, spare, "Phone")
    assert site.delete(API + "password/", headers=bearer(fresh)).status_code == 204
    assert login(site).status_code == 401  # no password matches any more
    assert site.get(MFA, headers=bearer(fresh)).json()["has_password"] is False
    assert passkey_sign_in(site, key).status_code == 200
    # Two passkeys and no codes: neither may go now.
    last = site.delete(f"{CREDENTIALS}{spare.id}/", headers=bearer(fresh))
    assert_field_errors(last, "non_field_errors")
    codes = site.post(API + "mfa/recovery-codes/", headers=bearer(fresh))
    assert codes.status_code == 200
    assert site.delete(f"{CREDENTIALS}{spare.id}/", headers=bearer(fresh)).status_code == 204
    assert_field_errors(site.delete(f"{CREDENTIALS}{key.id}/", headers=bearer(fresh)),
                        "non_field_errors")


def test_a_password_reset_on_a_passwordless_account_keeps_the_passkeys(
        site: httpx.Client, rp_settings: Settings, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Any) -> None:
    from test_password_reset import NEW_PASSWORD, confirm, mail_reset
    access = register(site)["access"]
    key = platform()
    fresh = add_passkey(site, access, key)["access"]  # one passkey and ten codes
    assert site.delete(API + "password/", headers=bearer(fresh)).status_code == 204
    token = mail_reset(site, rp_settings, tmp_path, sync_redis, smtp_server[0])
    assert confirm(site, token).status_code == 200
    step = password_step(site, password=NEW_PASSWORD)  # the passkey is still a factor
    assert step["methods"] == ["webauthn", "recovery_code"]
    assert passkey_sign_in(site, key).status_code == 200


def test_without_two_ways_back_the_password_stays(site: httpx.Client) -> None:
    """An authenticator app is no way in without a password: it does not count."""
    done = enrolled(site, register(site)["access"])
    refused = site.delete(API + "password/", headers=bearer(done["access"]))
    assert_field_errors(refused, "non_field_errors")
    assert password_step(site)["methods"] == ["totp", "recovery_code"]


# -- admins ----------------------------------------------------------------------------------
def test_an_admin_sees_passkeys_and_a_reset_removes_them(site: httpx.Client,
                                                         rp_settings: Settings,
                                                         sync_redis: redis.Redis) -> None:
    access = register(site)["access"]
    key = platform()
    add_passkey(site, access, key)
    admin = make_admin(site, rp_settings, sync_redis)
    uid = sql(rp_settings, "SELECT id FROM users WHERE username = 'alice'")[0]["id"]
    user = site.get(f"{API}users/{uid}/", headers=bearer(admin["access"])).json()
    assert user["mfa_methods"] == ["webauthn", "recovery_code"]
    assert site.post(f"{API}users/{uid}/mfa/reset/",
                     headers=bearer(admin["access"])).status_code == 204
    assert_refused(passkey_sign_in(site, key), "unknown_credential")
    assert set(logged_in(site)) >= {"access"}  # no factor left: the password alone

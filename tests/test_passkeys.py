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
from passkey_api import (
    CREDENTIALS,
    LOGIN_OPTIONS,
    MFA_OPTIONS,
    PASSKEY_LOGIN,
    REAUTH_OPTIONS,
    REG_OPTIONS,
    REGISTER,
    RP,
    T0,
    add_passkey,
    assert_refused,
    passkey_sign_in,
    platform,
    security_key,
)
from support import Clock, sql
from webauthn_forge import SoftAuthenticator, b64

from service.config import Settings
from service.store.keys import RedisKeys


# -- registration ----------------------------------------------------------------------------
def test_register_a_passkey_and_get_recovery_codes_with_the_first_factor(
        rp_site: httpx.Client, rp_settings: Settings) -> None:
    access = register(rp_site)["access"]
    options = rp_site.post(REG_OPTIONS, headers=bearer(access)).json()["publicKey"]
    assert options["rp"] == {"id": RP, "name": "authsvc"}
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    key = platform()
    made = rp_site.post(REGISTER, headers=bearer(access),
                     json={"credential": key.create(options), "name": "My laptop"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert set(body) == {"credential", "recovery_codes", "access"}
    assert body["credential"]["id"] == key.id and body["credential"]["name"] == "My laptop"
    assert body["credential"]["discoverable"] is True
    assert body["credential"]["transports"] == ["internal"]
    assert len(body["recovery_codes"]) == 10
    assert "webauthn" in claims(rp_settings, body["access"])["amr"]
    second = add_passkey(rp_site, access, security_key(), "Key")
    assert second["recovery_codes"] == []  # not the first factor any more
    listed = rp_site.get(CREDENTIALS, headers=bearer(access)).json()
    assert [p["name"] for p in listed] == ["My laptop", "Key"]
    status = rp_site.get(MFA, headers=bearer(access)).json()
    assert status["methods"] == ["webauthn", "recovery_code"]
    assert status["webauthn"] == {"credentials": 2} and status["has_password"] is True


def test_an_options_challenge_registers_once_and_only_its_user(rp_site: httpx.Client) -> None:
    alice = register(rp_site)["access"]
    bob = register(rp_site, username="bob", email="bob@example.com")["access"]
    options = rp_site.post(REG_OPTIONS, headers=bearer(alice)).json()["publicKey"]
    credential = platform().create(options)
    stolen = rp_site.post(REGISTER, headers=bearer(bob), json={"credential": credential})
    assert_field_errors(stolen, "credential")  # the challenge was alice's, and is now spent
    again = rp_site.post(REGISTER, headers=bearer(alice), json={"credential": credential})
    assert_field_errors(again, "credential")


def test_a_wrong_origin_registration_is_refused(rp_site: httpx.Client) -> None:
    access = register(rp_site)["access"]
    options = rp_site.post(REG_OPTIONS, headers=bearer(access)).json()["publicKey"]
    evil = SoftAuthenticator(RP, "https://evil.example").create(options)
    assert_field_errors(rp_site.post(REGISTER, headers=bearer(access),
                                  json={"credential": evil}), "credential")


def test_rename_and_delete(rp_site: httpx.Client) -> None:
    access = register(rp_site)["access"]
    key = platform()
    add_passkey(rp_site, access, key)
    add_passkey(rp_site, access, security_key())
    renamed = rp_site.patch(f"{CREDENTIALS}{key.id}/", headers=bearer(access),
                         json={"name": "Work laptop"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Work laptop"
    other = register(rp_site, username="bob", email="bob@example.com")["access"]
    assert rp_site.patch(f"{CREDENTIALS}{key.id}/", headers=bearer(other),
                      json={"name": "x"}).status_code == 404
    assert rp_site.delete(f"{CREDENTIALS}{key.id}/", headers=bearer(other)).status_code == 404
    assert rp_site.delete(f"{CREDENTIALS}{key.id}/", headers=bearer(access)).status_code == 204
    assert_refused(passkey_sign_in(rp_site, key), "unknown_credential")


# -- sign in without a username ---------------------------------------------------------------
def test_sign_in_without_a_username(rp_site: httpx.Client, rp_settings: Settings) -> None:
    access = register(rp_site)["access"]
    key = platform()
    add_passkey(rp_site, access, key)
    options = rp_site.post(LOGIN_OPTIONS).json()["publicKey"]
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    signed = rp_site.post(PASSKEY_LOGIN, json={"credential": key.get(options)})
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert set(body) == {"user", "access", "refresh", "device_token"}
    assert body["user"]["username"] == "alice"
    assert claims(rp_settings, body["access"])["amr"] == ["webauthn"]
    assert "authsvc_device" in signed.headers["set-cookie"]
    last_used = rp_site.get(CREDENTIALS, headers=bearer(body["access"])).json()[0]["last_used"]
    assert last_used is not None


@pytest.mark.parametrize("forgery, reason", [
    ({"origin": "https://evil.example"}, "wrong_origin"),
    ({"rp_id": "evil.example"}, "wrong_rp_id"),
    ({"verified": False}, "user_verification_missing"),
    ({"sign_count": 0}, "sign_count_regressed"),
    ({"challenge": b64(b"a challenge nobody handed out")}, "challenge_invalid"),
    ({"kind": "webauthn.create"}, "malformed"),
])
def test_each_forgery_is_refused_with_its_reason(rp_site: httpx.Client, forgery: dict[str, Any],
                                                 reason: str) -> None:
    access = register(rp_site)["access"]
    key = platform()
    add_passkey(rp_site, access, key)
    assert passkey_sign_in(rp_site, key).status_code == 200  # the count is 1 now
    assert_refused(passkey_sign_in(rp_site, key, **forgery), reason)


def test_a_replayed_assertion_and_a_broken_signature_are_refused(rp_site: httpx.Client) -> None:
    access = register(rp_site)["access"]
    key = platform()
    add_passkey(rp_site, access, key)
    options = rp_site.post(LOGIN_OPTIONS).json()["publicKey"]
    assertion = key.get(options)
    assert rp_site.post(PASSKEY_LOGIN, json={"credential": assertion}).status_code == 200
    assert_refused(rp_site.post(PASSKEY_LOGIN, json={"credential": assertion}),
                   "challenge_invalid")
    forged = key.get(rp_site.post(LOGIN_OPTIONS).json()["publicKey"])
    forged["response"]["signature"] = b64(b"\x30\x06\x02\x01\x01\x02\x01\x01")
    assert_refused(rp_site.post(PASSKEY_LOGIN, json={"credential": forged}), "bad_signature")
    stranger = platform()
    assert_refused(passkey_sign_in(rp_site, stranger), "unknown_credential")


@pytest.mark.parametrize("body", [{}, {"credential": "x"}, {"credential": {}},
                                  {"credential": {"id": 1, "response": []}}])
def test_a_bad_passkey_body_is_a_clean_4xx(rp_site: httpx.Client, body: Any) -> None:
    answer = rp_site.post(PASSKEY_LOGIN, json=body)
    assert answer.status_code in (400, 401), answer.text
    if answer.status_code == 401:
        assert answer.json()["reason"] == "malformed"


def test_a_cloned_authenticator_racing_with_one_count_wins_once(rp_site: httpx.Client) -> None:
    access = register(rp_site)["access"]
    key = platform()
    add_passkey(rp_site, access, key)
    assertions = [key.get(rp_site.post(LOGIN_OPTIONS).json()["publicKey"], sign_count=5)
                  for _ in range(8)]
    barrier = threading.Barrier(8)
    answers: list[int] = []

    def go(assertion: dict[str, Any]) -> None:
        barrier.wait()
        answers.append(rp_site.post(PASSKEY_LOGIN, json={"credential": assertion}).status_code)

    threads = [threading.Thread(target=go, args=(a,)) for a in assertions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200] + [401] * 7, answers


def test_challenges_are_hashed_single_use_keys_with_a_ttl(rp_site: httpx.Client,
                                                         rp_settings: Settings,
                                                         sync_redis: redis.Redis) -> None:
    challenge = rp_site.post(LOGIN_OPTIONS).json()["publicKey"]["challenge"]
    key = RedisKeys(rp_settings.redis.prefix).webauthn(challenge)
    assert challenge not in key and 0 < sync_redis.ttl(key) <= 300
    assert sync_redis.get(key) == b"login"


# -- as a second factor -----------------------------------------------------------------------
def test_a_security_key_as_the_second_factor(rp_site: httpx.Client,
                                             rp_settings: Settings) -> None:
    access = register(rp_site)["access"]
    key = security_key()
    add_passkey(rp_site, access, key)
    step = password_step(rp_site)
    assert step["methods"] == ["webauthn", "recovery_code"]
    options = rp_site.post(MFA_OPTIONS, json={"mfa_token": step["mfa_token"]}).json()["publicKey"]
    assert [c["id"] for c in options["allowCredentials"]] == [key.id]
    wrong = rp_site.post(API + "login/mfa/", json={
        "mfa_token": step["mfa_token"], "method": "webauthn",
        "credential": key.get(options, origin="https://evil.example")})
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "mfa_code_invalid" and wrong.json()["reason"] == "wrong_origin"
    options = rp_site.post(MFA_OPTIONS, json={"mfa_token": step["mfa_token"]}).json()["publicKey"]
    signed = rp_site.post(API + "login/mfa/", json={
        "mfa_token": step["mfa_token"], "method": "webauthn", "credential": key.get(options)})
    assert signed.status_code == 200, signed.text
    assert claims(rp_settings, signed.json()["access"])["amr"] == ["pwd", "webauthn"]
    dead = rp_site.post(MFA_OPTIONS, json={"mfa_token": step["mfa_token"]})
    assert dead.status_code == 401 and dead.json()["code"] == "mfa_token_invalid"


def test_a_security_key_cannot_sign_in_without_a_password(rp_site: httpx.Client) -> None:
    """No user verification: it is a second factor only."""
    access = register(rp_site)["access"]
    key = security_key()
    add_passkey(rp_site, access, key)
    assert_refused(passkey_sign_in(rp_site, key), "user_verification_missing")


def test_an_mfa_challenge_serves_only_its_own_sign_in(rp_site: httpx.Client) -> None:
    access = register(rp_site)["access"]
    key = platform()
    add_passkey(rp_site, access, key)
    first, second = password_step(rp_site), password_step(rp_site)
    options = rp_site.post(MFA_OPTIONS, json={"mfa_token": first["mfa_token"]}).json()["publicKey"]
    crossed = rp_site.post(API + "login/mfa/", json={
        "mfa_token": second["mfa_token"], "method": "webauthn", "credential": key.get(options)})
    assert crossed.status_code == 401 and crossed.json()["reason"] == "challenge_invalid"
    # Nor the username-less sign-in: a challenge is for what it was handed out for.
    options = rp_site.post(MFA_OPTIONS, json={"mfa_token": first["mfa_token"]}).json()["publicKey"]
    assert_refused(rp_site.post(PASSKEY_LOGIN, json={"credential": key.get(options)}),
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
def test_the_password_goes_only_with_a_way_back_in(rp_site: httpx.Client,
                                                   rp_settings: Settings) -> None:
    access = register(rp_site)["access"]
    key = platform()
    fresh = add_passkey(rp_site, access, key)["access"]
    sql(rp_settings, "DELETE FROM mfa_recovery_codes")  # one passkey and no codes: not yet
    refused = rp_site.delete(API + "password/", headers=bearer(fresh))
    assert_field_errors(refused, "non_field_errors")
    spare = platform()
    add_passkey(rp_site, fresh, spare, "Phone")
    assert rp_site.delete(API + "password/", headers=bearer(fresh)).status_code == 204
    assert login(rp_site).status_code == 401  # no password matches any more
    assert rp_site.get(MFA, headers=bearer(fresh)).json()["has_password"] is False
    assert passkey_sign_in(rp_site, key).status_code == 200
    # Two passkeys and no codes: neither may go now.
    last = rp_site.delete(f"{CREDENTIALS}{spare.id}/", headers=bearer(fresh))
    assert_field_errors(last, "non_field_errors")
    codes = rp_site.post(API + "mfa/recovery-codes/", headers=bearer(fresh))
    assert codes.status_code == 200
    assert rp_site.delete(f"{CREDENTIALS}{spare.id}/", headers=bearer(fresh)).status_code == 204
    assert_field_errors(rp_site.delete(f"{CREDENTIALS}{key.id}/", headers=bearer(fresh)),
                        "non_field_errors")


def test_a_password_reset_on_a_passwordless_account_keeps_the_passkeys(
        rp_site: httpx.Client, rp_settings: Settings, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Any) -> None:
    from test_password_reset import NEW_PASSWORD, confirm, mail_reset
    access = register(rp_site)["access"]
    key = platform()
    fresh = add_passkey(rp_site, access, key)["access"]  # one passkey and ten codes
    assert rp_site.delete(API + "password/", headers=bearer(fresh)).status_code == 204
    token = mail_reset(rp_site, rp_settings, tmp_path, sync_redis, smtp_server[0])
    assert confirm(rp_site, token).status_code == 200
    step = password_step(rp_site, password=NEW_PASSWORD)  # the passkey is still a factor
    assert step["methods"] == ["webauthn", "recovery_code"]
    assert passkey_sign_in(rp_site, key).status_code == 200


def test_without_two_ways_back_the_password_stays(rp_site: httpx.Client) -> None:
    """An authenticator app is no way in without a password: it does not count."""
    done = enrolled(rp_site, register(rp_site)["access"])
    refused = rp_site.delete(API + "password/", headers=bearer(done["access"]))
    assert_field_errors(refused, "non_field_errors")
    assert password_step(rp_site)["methods"] == ["totp", "recovery_code"]


# -- admins ----------------------------------------------------------------------------------
def test_an_admin_sees_passkeys_and_a_reset_removes_them(rp_site: httpx.Client,
                                                         rp_settings: Settings,
                                                         sync_redis: redis.Redis) -> None:
    access = register(rp_site)["access"]
    key = platform()
    add_passkey(rp_site, access, key)
    admin = make_admin(rp_site, rp_settings, sync_redis)
    uid = sql(rp_settings, "SELECT id FROM users WHERE username = 'alice'")[0]["id"]
    user = rp_site.get(f"{API}users/{uid}/", headers=bearer(admin["access"])).json()
    assert user["mfa_methods"] == ["webauthn", "recovery_code"]
    assert rp_site.post(f"{API}users/{uid}/mfa/reset/",
                     headers=bearer(admin["access"])).status_code == 204
    assert_refused(passkey_sign_in(rp_site, key), "unknown_credential")
    assert set(logged_in(rp_site)) >= {"access"}  # no factor left: the password alone


def test_a_passwordless_account_is_never_offered_its_password(rp_settings: Settings,
                                                              make_client: Any) -> None:
    """Step-up names only what the account can use; the sign-in page's autofill options
    spend no login budget (every page load asks for them)."""
    clock = Clock(T0)
    client = make_client(rp_settings.replace(rate_limit={"enabled": True}), clock=clock)
    access = register(client)["access"]
    fresh = add_passkey(client, access, platform())["access"]
    assert client.delete(API + "password/", headers=bearer(fresh)).status_code == 204
    clock.now += rp_settings.mfa.step_up_max_age + 1
    stale = client.post(API + "mfa/recovery-codes/", headers=bearer(fresh))
    assert stale.status_code == 403
    assert stale.json()["methods"] == ["webauthn", "recovery_code"]
    limit = rp_settings.rate_limit.login.limit
    assert {client.post(LOGIN_OPTIONS).status_code for _ in range(limit + 2)} == {200}


def test_a_passwordless_account_deletes_itself_with_a_recent_sign_in(
        rp_settings: Settings, make_client: Any) -> None:
    clock = Clock(T0)
    client = make_client(rp_settings, clock=clock)
    access = register(client)["access"]
    key = platform()
    fresh = add_passkey(client, access, key)["access"]
    assert client.delete(API + "password/", headers=bearer(fresh)).status_code == 204
    clock.now += rp_settings.mfa.step_up_max_age + 1
    stale = client.request("DELETE", API + "profile/", headers=bearer(fresh), json={})
    assert stale.status_code == 403 and stale.json()["code"] == "step_up_required"
    signed = passkey_sign_in(client, key).json()
    gone = client.request("DELETE", API + "profile/", headers=bearer(signed["access"]),
                          json={})
    assert gone.status_code == 204, gone.text
    assert_refused(passkey_sign_in(client, key), "unknown_credential")
    # An account with a password still has to send it.
    other = register(client, username="bob", email="bob@example.com")["access"]
    assert_field_errors(client.request("DELETE", API + "profile/", headers=bearer(other),
                                       json={}), "password")

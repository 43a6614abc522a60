"""Django's hash formats as the reference stored them (the fixture), and hostile ones: a bad
row refuses its login, never raises and never burns unbounded work; the old tokens' codec."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
import unicodedata
from collections.abc import Callable

import jwt
import pytest
from django_ref import BY_FORMAT, TOKENS, USERS, migration_settings, session_of
from support import FAST_PASSWORDS

from service.config import ConfigError, MigrationSettings, Settings, validate
from service.core import django_hashes
from service.core.passwords import PasswordHasher
from service.core.simplejwt import SimpleJwtCodec
from service.errors import TokenInvalid


@pytest.mark.parametrize("hash_format", sorted(BY_FORMAT))
def test_each_reference_hash_verifies_its_password_only(hash_format: str) -> None:
    user = BY_FORMAT[hash_format]
    stored = user["password_hash"]
    assert stored.startswith(TOKENS["hash_prefixes"][hash_format])
    assert django_hashes.hash_format(stored) == hash_format
    assert django_hashes.verify(stored, user["password"])
    assert not django_hashes.verify(stored, user["password"] + " ")
    assert not django_hashes.verify(stored, user["password"].upper())


def test_a_verified_django_hash_is_re_made_as_argon2id() -> None:
    hasher = PasswordHasher(FAST_PASSWORDS)
    try:
        user = BY_FORMAT["bcrypt_sha256"]
        result = hasher._verify_sync(user["password_hash"], user["password"])
        assert result.valid and result.new_hash is not None
        assert result.new_hash.startswith("$argon2id$")
        assert hasher._verify_sync(result.new_hash, user["password"]).valid
        assert not hasher._verify_sync(user["password_hash"], "wrong password").valid
        unusable = USERS["nopass"]["password_hash"]
        assert not hasher._verify_sync(unusable, "").valid
        assert not hasher._verify_sync(unusable, unusable).valid
    finally:
        hasher.close()


def pbkdf2(password: str, iterations: int = 1000, salt: str = "salt") -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


def test_the_password_is_checked_as_typed_as_django_hashed_it() -> None:
    """Django hashes the raw text (no NFKC): a decomposed é logs in as typed, and so, after
    the re-hash, in any form (authsvc normalises what it hashes)."""
    decomposed = unicodedata.normalize("NFD", "café au lait")
    stored = pbkdf2(decomposed)
    assert django_hashes.verify(stored, decomposed)
    assert not django_hashes.verify(stored, unicodedata.normalize("NFC", decomposed))
    hasher = PasswordHasher(FAST_PASSWORDS)
    try:
        result = hasher._verify_sync(stored, decomposed)
        assert result.valid and result.new_hash
        assert hasher._verify_sync(result.new_hash, "café au lait").valid
    finally:
        hasher.close()


def test_bcrypt_reads_72_bytes_as_bcrypt_always_did() -> None:
    import bcrypt

    long = "x" * 72
    stored = "bcrypt$" + bcrypt.hashpw(long.encode(), bcrypt.gensalt(4)).decode()
    assert django_hashes.verify(stored, long)
    assert django_hashes.verify(stored, long + "ignored past 72 bytes")  # never an exception


@pytest.mark.parametrize("stored", [
    "pbkdf2_sha256$", "pbkdf2_sha256$abc$salt$hash", "pbkdf2_sha256$0$salt$AAAA",
    "pbkdf2_sha256$1000$$AAAA", "pbkdf2_sha256$1000$salt$not base64!",
    "pbkdf2_sha256$1000$salt$", "pbkdf2_sha256$99999999999$salt$AAAA",
    "argon2$", "argon2$argon2id$v=19$m=1,t=1,p=1$junk", "argon2$$$$",
    "bcrypt$", "bcrypt$$2b$04$tooshort", "bcrypt_sha256$$2y$99$" + "a" * 53,
    "scrypt$", "scrypt$16384$salt$8$1$", "scrypt$3$salt$8$1$AAAA",
    "scrypt$1073741824$salt$8$1$AAAA", "scrypt$16384$salt$4096$1$AAAA",
    "scrypt$16384$salt$8$99$AAAA", "scrypt$x$salt$8$1$AAAA", "md5$salt$hash", "", "!",
])
def test_a_hostile_or_broken_stored_hash_refuses_quickly_and_never_raises(stored: str) -> None:
    started = time.process_time()
    assert not django_hashes.verify(stored, "any password")
    assert time.process_time() - started < 5  # bounded work: no 10^11-round PBKDF2, no 1 TiB


# -- the old tokens' codec -----------------------------------------------------------------------
def old_token(**claims: object) -> str:
    base = {"token_type": "access", "exp": int(time.time()) + 60, "iat": int(time.time()),
            "jti": "abc", "user_id": "4"}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, TOKENS["signing_key"],
                      algorithm="HS256")


def codec(**changes: str) -> SimpleJwtCodec:
    return SimpleJwtCodec(dataclasses.replace(migration_settings(), **changes), leeway=10)


def test_the_codec_reads_the_reference_tokens() -> None:
    old = codec().decode(session_of(USERS["siteadmin"])["access"], "access", time.time())
    assert old.legacy_id == USERS["siteadmin"]["id"] and old.token_type == "access"


@pytest.mark.parametrize(("token", "reason"), [
    (lambda: old_token(exp=int(time.time()) - 60), "token_expired"),
    (lambda: old_token(iat=int(time.time()) + 600), "token_not_yet_valid"),
    (lambda: old_token(token_type="refresh"), "wrong_token_type"),
    (lambda: old_token(user_id=None), "malformed"),
    (lambda: old_token(user_id=True), "malformed"),
    (lambda: old_token(user_id=4.0), "malformed"),
    (lambda: old_token(user_id="-4"), "malformed"),
    (lambda: old_token(user_id=0), "malformed"),
    (lambda: old_token(user_id="4" * 30), "malformed"),
    (lambda: old_token(user_id=2 ** 70), "malformed"),
    (lambda: old_token(jti=None), "malformed"),
    (lambda: old_token(jti=7), "malformed"),
    (lambda: old_token(jti="j" * 256), "malformed"),
    (lambda: old_token(exp="soon"), "malformed"),
    (lambda: jwt.encode({"token_type": "access", "exp": 2 ** 40, "jti": "x", "user_id": 1},
                "another key of the right length, 32+ bytes", algorithm="HS256"),
     "bad_signature"),
    (lambda: jwt.encode({"token_type": "access", "exp": 2 ** 40, "jti": "x", "user_id": 1}, "",
                algorithm="none"), "bad_signature"),
    (lambda: "not.a.token", "malformed"),
])
def test_the_codec_refuses_with_a_reason(token: Callable[[], str], reason: str) -> None:
    """Each token is made when its test runs: its times are relative to then."""
    with pytest.raises(TokenInvalid) as refused:
        codec().decode(token(), "access", time.time())
    assert refused.value.reason == reason


def test_the_codec_accepts_nothing_after_accept_until_or_when_off() -> None:
    token = old_token()
    assert codec().decode(token, "access", time.time()).legacy_id == 4
    for changed in (codec(accept_until="2020-01-01T00:00:00Z"),
                    codec(simplejwt_signing_key="")):
        with pytest.raises(TokenInvalid):
            changed.decode(token, "access", time.time())


def test_issuer_and_audience_are_checked_when_set() -> None:
    strict = codec(simplejwt_issuer="old-service", simplejwt_audience="web")
    with pytest.raises(TokenInvalid) as refused:
        strict.decode(old_token(), "access", time.time())
    assert refused.value.reason in ("wrong_issuer", "wrong_audience", "malformed")
    good = old_token(iss="old-service", aud="web")
    assert strict.decode(good, "access", time.time()).legacy_id == 4


@pytest.mark.parametrize(("section", "message"), [
    ({"simplejwt_signing_key": "k" * 40}, "accept_until"),
    ({"accept_until": "2027-01-01T00:00:00Z"}, "simplejwt_signing_key"),
    ({"simplejwt_signing_key": "k" * 40, "accept_until": "tomorrow"}, "RFC 3339"),
    ({"simplejwt_signing_key": "k" * 40, "accept_until": "2027-01-01T00:00:00"}, "offset"),
    ({"simplejwt_signing_key": "k" * 40, "accept_until": "2027-01-01T00:00:00Z",
      "simplejwt_algorithm": "RS256"}, "simplejwt_algorithm"),
])
def test_a_half_set_migration_section_is_a_config_error(section: dict[str, str],
                                                        message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(Settings(migration=MigrationSettings(**section)))


def over_cost_hashes() -> list[str]:
    """Well-formed hashes costing more than any Django made (found by review: each took
    3 s to 28 s and up to 4 GiB a check before their costs were bounded)."""
    import bcrypt

    cheap = bcrypt.hashpw(b"x", b"$2b$04$abcdefghijklmnopqrstuu").decode()
    argon2_id = BY_FORMAT["argon2"]["password_hash"]
    return [
        "bcrypt$" + cheap.replace("$04$", "$16$"),
        "bcrypt_sha256$" + cheap.replace("$04$", "$31$"),
        argon2_id.replace("m=102400", "m=4194304"),
        argon2_id.replace("t=2", "t=50"),
        argon2_id.replace("p=8", "p=64"),
        argon2_id.replace("p=8", "p=16"),
        argon2_id.replace("m=102400", "m=131072").replace("t=2", "t=4"),
        pbkdf2("x", 10_000_000),
        "pbkdf2_sha256$100000$salt$" + base64.b64encode(b"x" * 3200).decode(),
        "scrypt$1048576$salt$8$1$" + base64.b64encode(b"x" * 64).decode(),
        "scrypt$32768$salt$8$16$" + base64.b64encode(b"x" * 64).decode(),
        pbkdf2("x") + "A" * 300,
    ]


@pytest.mark.parametrize("stored", over_cost_hashes())
def test_a_hash_costing_more_than_django_ever_made_is_refused_without_computing(
        stored: str) -> None:
    started = time.perf_counter()
    assert not django_hashes.verify(stored, "x")
    assert not django_hashes.importable(stored)  # and the import skips it (hash_unsupported)
    assert time.perf_counter() - started < 0.5


def test_every_reference_hash_is_importable() -> None:
    for user in TOKENS["users"]:
        if user.get("password_hash"):
            assert django_hashes.importable(user["password_hash"]), user["hasher"]


def test_a_short_simplejwt_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        validate(Settings(migration=MigrationSettings(
            simplejwt_signing_key="short", accept_until="2027-01-01T00:00:00Z")))


def test_hs512_with_a_django_generated_key_is_accepted() -> None:
    """simplejwt signs with Django's SECRET_KEY (50 characters when generated): short of
    HS512's 64-byte hash, yet the only key the browsers' tokens verify under."""
    validate(Settings(migration=MigrationSettings(
        simplejwt_signing_key="k" * 50, simplejwt_algorithm="HS512",
        accept_until="2027-01-01T00:00:00Z")))

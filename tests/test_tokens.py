"""tokens.py: issue and decode with the clock passed in; every forgery is refused with a reason."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from api import claims

from service.config import JwtSettings, Settings
from service.core.tokens import ACCESS, REFRESH, TokenCodec
from service.errors import TokenInvalid

SECRET = "k" * 64
SIGNED_WITH = Settings().replace(jwt={"secret": SECRET})  # what codec() signs with
NOW = 1_800_000_000.0


def codec(**overrides: object) -> TokenCodec:
    return TokenCodec(JwtSettings(**overrides), SECRET)  # type: ignore[arg-type]


def reason(call: object) -> str:
    with pytest.raises(TokenInvalid) as info:
        call()  # type: ignore[operator]
    return info.value.reason


def test_round_trip_carries_the_claims() -> None:
    pair = codec().issue_pair(sub="7", role="user", ver=3, sid="s", now=NOW)
    access = codec().decode(pair.access, ACCESS, NOW)
    refresh = codec().decode(pair.refresh, REFRESH, NOW)
    assert (access.sub, access.role, access.ver, access.token_type) == ("7", "user", 3, "access")
    assert access.exp - access.iat == 3600
    assert refresh.exp - refresh.iat == 86400
    assert access.jti != refresh.jti


def test_expiry_is_judged_by_the_injected_clock_with_leeway() -> None:
    token, claims = codec(leeway=10).issue(ACCESS, sub="1", role="user", ver=0, sid="s", now=NOW)
    assert codec(leeway=10).decode(token, ACCESS, claims.exp + 9).sub == "1"
    late = claims.exp + 10
    assert reason(lambda: codec(leeway=10).decode(token, ACCESS, late)) == "token_expired"


def test_token_from_the_future_is_refused() -> None:
    token, _ = codec().issue(ACCESS, sub="1", role="user", ver=0, sid="s", now=NOW + 60)
    assert reason(lambda: codec().decode(token, ACCESS, NOW)) == "token_not_yet_valid"


@pytest.mark.parametrize("given, expected", [(ACCESS, REFRESH), (REFRESH, ACCESS)])
def test_access_and_refresh_are_never_confused(given: str, expected: str) -> None:
    token, _ = codec().issue(given, sub="1", role="user", ver=0, sid="s", now=NOW)
    assert reason(lambda: codec().decode(token, expected, NOW)) == "wrong_token_type"


def test_wrong_key_is_refused() -> None:
    other_key = TokenCodec(JwtSettings(), "z" * 40)
    token, _ = other_key.issue(ACCESS, sub="1", role="u", ver=0, sid="s", now=NOW)
    assert reason(lambda: codec().decode(token, ACCESS, NOW)) == "bad_signature"


def test_alg_none_is_refused() -> None:
    token, _claims = codec().issue(ACCESS, sub="1", role="admin", ver=0, sid="s", now=NOW)
    payload = claims(SIGNED_WITH, token)
    unsigned = jwt.encode(payload, None, algorithm="none")  # type: ignore[arg-type]
    assert reason(lambda: codec().decode(unsigned, ACCESS, NOW)) == "bad_signature"


def test_other_hmac_algorithm_is_refused_when_pinned() -> None:
    payload = claims(SIGNED_WITH,
                     codec().issue(ACCESS, sub="1", role="u", ver=0, sid="s", now=NOW)[0])
    forged = jwt.encode(payload, SECRET, algorithm="HS512")
    assert reason(lambda: codec().decode(forged, ACCESS, NOW)) == "bad_signature"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_altered_payload_is_refused() -> None:
    token, _ = codec().issue(ACCESS, sub="1", role="user", ver=0, sid="s", now=NOW)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"
    altered = ".".join([header, _b64(json.dumps(claims).encode()), signature])
    assert reason(lambda: codec().decode(altered, ACCESS, NOW)) == "bad_signature"


def test_every_single_byte_change_is_refused() -> None:
    token, _ = codec().issue(ACCESS, sub="1", role="user", ver=0, sid="s", now=NOW)
    accepted = []
    for i in range(len(token)):
        replacement = "A" if token[i] != "A" else "B"
        mutated = token[:i] + replacement + token[i + 1:]
        try:
            codec().decode(mutated, ACCESS, NOW)
        except TokenInvalid:
            continue
        # base64url's last character can carry unused bits; decoding to the same bytes is fine.
        if jwt.decode(mutated, SECRET, algorithms=["HS256"], options={"verify_exp": False}) != \
                jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False}):
            accepted.append(i)
    assert accepted == []


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 5000, "...", "eyJ.eyJ.sig"])
def test_garbage_is_malformed(garbage: str) -> None:
    assert reason(lambda: codec().decode(garbage, ACCESS, NOW)) in {"malformed", "bad_signature"}


def test_missing_and_mistyped_claims_are_refused() -> None:
    base = {"sub": "1", "jti": "j", "iat": int(NOW), "exp": int(NOW) + 60, "token_type": "access",
            "sid": "s"}
    for broken in ({k: v for k, v in base.items() if k != "jti"}, {**base, "sub": 1},
                   {**base, "token_type": None}, {**base, "ver": "0"},
                   {k: v for k, v in base.items() if k != "sid"}, {**base, "sid": 5}):
        token = jwt.encode(broken, SECRET, algorithm="HS256")
        assert reason(lambda token=token: codec().decode(token, ACCESS, NOW)) == "malformed"


def test_issuer_and_audience_are_checked_when_configured() -> None:
    strict = codec(issuer="authsvc", audience="web")
    token, _ = strict.issue(ACCESS, sub="1", role="u", ver=0, sid="s", now=NOW)
    assert strict.decode(token, ACCESS, NOW).sub == "1"
    other_aud, _ = codec(issuer="authsvc", audience="mobile").issue(ACCESS, sub="1", role="u",
                                                                    ver=0, sid="s", now=NOW)
    assert reason(lambda: strict.decode(other_aud, ACCESS, NOW)) == "wrong_audience"
    other_iss, _ = codec(issuer="evil", audience="web").issue(ACCESS, sub="1", role="u", ver=0,
                                                             sid="s", now=NOW)
    assert reason(lambda: strict.decode(other_iss, ACCESS, NOW)) == "wrong_issuer"


def test_refresh_successor_keeps_the_original_expiry() -> None:
    _, first = codec().issue(REFRESH, sub="1", role="u", ver=0, sid="s", now=NOW)
    _, second = codec().issue(REFRESH, sub="1", role="u", ver=0, sid="s", now=NOW + 500,
                              exp=first.exp)
    assert second.exp == first.exp


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenCodec(JwtSettings(), "short")


def test_a_verified_token_is_still_judged_on_time_and_type_every_time() -> None:
    """The cache keeps only what never changes (signature, claims); expiry and type are
    checked on every decode, and a forged token is never cached."""
    c = codec(leeway=10)
    token, claims = c.issue(ACCESS, sub="1", role="user", ver=0, sid="s", now=NOW)
    assert c.decode(token, ACCESS, NOW).jti == claims.jti
    assert reason(lambda: c.decode(token, REFRESH, NOW)) == "wrong_token_type"
    assert reason(lambda: c.decode(token, ACCESS, claims.exp + 10)) == "token_expired"
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for _ in range(2):
        assert reason(lambda: c.decode(forged, ACCESS, NOW)) == "bad_signature"


def test_the_verified_cache_is_bounded() -> None:
    """Memory stays bounded however many distinct tokens arrive; evicted ones still decode."""
    c = TokenCodec(JwtSettings(), SECRET, cache_size=3)
    tokens = [c.issue(ACCESS, sub=str(i), role="u", ver=0, sid="s", now=NOW)[0]
              for i in range(10)]
    for token in tokens:
        c.decode(token, ACCESS, NOW)
    assert len(c._verified) == 3
    assert c.decode(tokens[0], ACCESS, NOW).sub == "0"


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("extra", [{}, {"issuer": "https://auth.example", "audience": "app"}])
def test_minted_tokens_are_byte_for_byte_what_pyjwt_mints(algorithm: str,
                                                          extra: dict[str, str]) -> None:
    """The service signs with its own HMAC signer (speed); PyJWT, given the same claims in
    the same order, must produce the very same string, and verify it."""
    key = "q" * 64
    minted = TokenCodec(JwtSettings(algorithm=algorithm, **extra), key)  # type: ignore[arg-type]
    token, claims = minted.issue(ACCESS, sub="42", role="rôle ✓", ver=5, sid="sess", now=NOW)
    payload = {"token_type": "access", "sub": "42", "jti": claims.jti, "iat": claims.iat,
               "exp": claims.exp, "role": "rôle ✓", "ver": 5, "sid": "sess",
               "amr": ["pwd"], "auth_time": claims.iat}
    if extra:
        payload.update(iss=extra["issuer"], aud=extra["audience"])
    assert token == jwt.encode(payload, key, algorithm=algorithm)
    decoded = jwt.decode(token, key, algorithms=[algorithm], audience=extra.get("audience"),
                         options={"verify_exp": False, "verify_iat": False})
    assert decoded == payload

"""The one place a token's life is defined: issue and decode, pure, with the clock passed in.

Claims: sub (user id), jti, iat, exp, token_type (access|refresh), role, ver (the user's
token version: a password reset bumps it, refusing every token minted before), sid (the
server-side session both tokens belong to), amr and auth_time (how and when the session last
proved who it is: the Grant, which refresh carries over), scope ("mfa_enrolment" on tokens
that reach only the enrolment of a second factor), and iss/aud when configured. The algorithm is
pinned on decode; PyJWT errors become TokenInvalid here.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from service.config import JwtSettings
from service.errors import TokenInvalid

_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Tokens whose signature was verified, kept per process: a client sends one access token
# many times, and re-verifying an unchanged string is wasted work. ~1 KB each.
VERIFIED_CACHE_SIZE = 10_000
ACCESS = "access"
REFRESH = "refresh"
_DIGESTS = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def verified_payload(token: str, key: str, algorithm: str, *, issuer: str, audience: str,
                     required: list[str]) -> dict[str, Any]:
    """PyJWT's verification of signature, pinned algorithm, issuer and audience (when set)
    and the `required` claims' presence; its errors as TokenInvalid reasons. Times are left
    to check_times (with the leeway, on every use)."""
    try:
        return jwt.decode(
            token, key, algorithms=[algorithm], audience=audience or None,
            issuer=issuer or None,
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                     "verify_aud": bool(audience), "verify_iss": bool(issuer),
                     "require": required})
    except jwt.InvalidSignatureError as exc:
        raise TokenInvalid("bad_signature") from exc
    except jwt.InvalidAlgorithmError as exc:
        raise TokenInvalid("bad_signature", "Token is signed with a refused algorithm") from exc
    except jwt.InvalidAudienceError as exc:
        raise TokenInvalid("wrong_audience") from exc
    except jwt.InvalidIssuerError as exc:
        raise TokenInvalid("wrong_issuer") from exc
    except jwt.PyJWTError as exc:
        raise TokenInvalid("malformed") from exc


def check_times(exp: int, iat: int, token_type: str, expected_type: str, now: float,
                leeway: int) -> None:
    """Expired, issued in the future (each with `leeway` for clock skew), or the wrong type."""
    if exp + leeway <= now:
        raise TokenInvalid("token_expired", "Token is expired")
    if iat - leeway > now:
        raise TokenInvalid("token_not_yet_valid", "Token was issued in the future")
    if token_type != expected_type:
        raise TokenInvalid("wrong_token_type", "Token has wrong type")


class HmacSigner:
    """Mints compact HS256/384/512 tokens byte for byte as `jwt.encode` does (tests compare).

    PyJWT re-serialises the header and re-prepares the key on every call, about a sixth of a
    token refresh; here the header is encoded once and the MAC is one OpenSSL call. Every
    token is still verified by PyJWT (TokenCodec._verify).
    """

    def __init__(self, algorithm: str, key: str) -> None:
        header = json.dumps({"alg": algorithm, "typ": "JWT"}, separators=(",", ":"),
                            sort_keys=True)
        self._header = _b64(header.encode()) + b"."
        self._key = key.encode()
        self._digest = _DIGESTS[algorithm]

    def sign(self, payload: dict[str, Any]) -> str:
        body = json.dumps(payload, separators=(",", ":")).encode()
        signing_input = self._header + _b64(body)
        mac = hmac.digest(self._key, signing_input, self._digest)
        return (signing_input + b"." + _b64(mac)).decode()


ENROLMENT_SCOPE = "mfa_enrolment"


@dataclass(frozen=True)
class Grant:
    """How and when a session last proved who it is (RFC 8176 `amr`, OIDC `auth_time`), and
    the scope its tokens are limited to ("" for none). Kept on the session (store/sessions.py)
    so a refresh, and a re-authentication, carry it into every later token."""

    amr: tuple[str, ...]
    auth_time: int
    scope: str = ""


@dataclass(frozen=True)
class Claims:
    """A token's claims, as verified by TokenCodec.decode (see the module's docstring).
    Tokens minted before amr/auth_time existed read as a password sign-in long ago (0): their
    `iat` may be a refresh's, not a sign-in's."""

    sub: str
    jti: str
    iat: int
    exp: int
    token_type: str
    role: str
    ver: int
    sid: str
    amr: tuple[str, ...] = ("pwd",)
    auth_time: int = 0
    scope: str = ""

    @property
    def grant(self) -> Grant:
        return Grant(self.amr, self.auth_time, self.scope)


@dataclass(frozen=True)
class TokenPair:
    """A session's two tokens, with the refresh token's claims (its jti and exp are stored)."""

    access: str
    refresh: str
    refresh_claims: Claims


class TokenCodec:
    def __init__(self, settings: JwtSettings, secret: str,
                 cache_size: int = VERIFIED_CACHE_SIZE) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("JWT secret must be at least 32 bytes")
        self._s = settings
        self._key = secret
        self._signer = HmacSigner(settings.algorithm, secret)
        # token string -> its verified claims (insertion-ordered: the oldest go first)
        self._verified: dict[str, Claims] = {}
        self._cache_size = cache_size

    def _encode(self, claims: Claims) -> str:
        payload: dict[str, Any] = {
            "token_type": claims.token_type, "sub": claims.sub, "jti": claims.jti,
            "iat": claims.iat, "exp": claims.exp, "role": claims.role, "ver": claims.ver,
            "sid": claims.sid, "amr": list(claims.amr), "auth_time": claims.auth_time}
        if claims.scope:
            payload["scope"] = claims.scope
        if self._s.issuer:
            payload["iss"] = self._s.issuer
        if self._s.audience:
            payload["aud"] = self._s.audience
        return self._signer.sign(payload)

    def issue(self, token_type: str, *, sub: str, role: str, ver: int, sid: str, now: float,
              exp: int | None = None, jti: str | None = None,
              grant: Grant | None = None) -> tuple[str, Claims]:
        """Mint a token (no grant: a password sign-in now). HMAC signing is deterministic:
        the same claims (jti, iat included) give the same token, which is how a rotation's
        successor is handed out again."""
        ttl = self._s.access_ttl if token_type == ACCESS else self._s.refresh_ttl
        iat = int(now)
        grant = grant or Grant(("pwd",), iat)
        claims = Claims(sub=sub, jti=jti or uuid.uuid4().hex, iat=iat, exp=exp or iat + ttl,
                        token_type=token_type, role=role, ver=ver, sid=sid, amr=grant.amr,
                        auth_time=grant.auth_time, scope=grant.scope)
        return self._encode(claims), claims

    def issue_access(self, *, sub: str, role: str, ver: int, sid: str, now: float,
                     session_end: int, jti: str | None = None,
                     grant: Grant | None = None) -> tuple[str, Claims]:
        """An access token that never outlives its session: `exp` is at most `session_end`
        (the session's refresh token's `exp`), so a client scheduling refreshes by `exp`
        never holds a token the server already refuses as `session_ended`."""
        exp = min(int(now) + self._s.access_ttl, session_end)
        return self.issue(ACCESS, sub=sub, role=role, ver=ver, sid=sid, now=now, exp=exp,
                          jti=jti, grant=grant)

    def issue_pair(self, *, sub: str, role: str, ver: int, sid: str, now: float,
                   refresh_exp: int | None = None, refresh_jti: str | None = None,
                   access_jti: str | None = None, grant: Grant | None = None) -> TokenPair:
        refresh, refresh_claims = self.issue(REFRESH, sub=sub, role=role, ver=ver, sid=sid,
                                             now=now, exp=refresh_exp, jti=refresh_jti,
                                             grant=grant)
        access, _ = self.issue_access(sub=sub, role=role, ver=ver, sid=sid, now=now,
                                      session_end=refresh_claims.exp, jti=access_jti,
                                      grant=grant)
        return TokenPair(access, refresh, refresh_claims)

    def decode(self, token: str, expected_type: str, now: float) -> Claims:
        """Verify signature, algorithm, times and type; raise TokenInvalid with a reason."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if len(self._verified) >= self._cache_size:
                self._verified.pop(next(iter(self._verified)))  # oldest first
            self._verified[token] = claims
        check_times(claims.exp, claims.iat, claims.token_type, expected_type, now,
                    self._s.leeway)
        return claims

    def _verify(self, token: str) -> Claims:
        """Signature, algorithm and claim shapes: facts about the token string that never
        change, so decode() keeps them in a bounded cache. Time, type, revocation and the
        session are judged on every call (revocation by the caller, in Redis)."""
        # Exactly three unpadded base64url segments: PyJWT would also accept added '='.
        if not _COMPACT_JWS.fullmatch(token):
            raise TokenInvalid("malformed")
        payload = verified_payload(token, self._key, self._s.algorithm, issuer=self._s.issuer,
                                   audience=self._s.audience,
                                   required=["exp", "iat", "jti", "sub", "sid"])
        return self._claims(payload)

    @staticmethod
    def _claims(payload: dict[str, Any]) -> Claims:
        try:
            fields = {
                "sub": payload["sub"], "jti": payload["jti"], "iat": payload["iat"],
                "exp": payload["exp"], "token_type": payload.get("token_type"),
                "role": payload.get("role", ""), "ver": payload.get("ver", 0),
                "sid": payload["sid"]}
        except KeyError as exc:
            raise TokenInvalid("malformed") from exc
        fields.update(auth_time=payload.get("auth_time", 0),
                      scope=payload.get("scope", ""))
        types = {"sub": str, "jti": str, "iat": int, "exp": int, "token_type": str,
                 "role": str, "ver": int, "sid": str, "auth_time": int, "scope": str}
        for name, kind in types.items():
            value = fields[name]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise TokenInvalid("malformed", f"Token claim {name} is malformed")
        amr = payload.get("amr", ["pwd"])
        if not isinstance(amr, list) or not all(isinstance(m, str) for m in amr):
            raise TokenInvalid("malformed", "Token claim amr is malformed")
        return Claims(**fields, amr=tuple(amr))

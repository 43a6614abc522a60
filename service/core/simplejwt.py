"""Tokens minted by the Django REST Framework + simplejwt service authsvc replaces, decoded
with its key, algorithm, issuer and audience while `[migration] accept_until` lasts.

simplejwt's claims: token_type (access | refresh), exp, iat, jti and the user id claim
(`user_id` by default; a string or a number, as simplejwt versions differ). No session, no
token version: core/migration.py gives them those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from service.config import MigrationSettings
from service.core.tokens import check_times, verified_payload
from service.errors import TokenInvalid

# Django's ids: positive BigAutoField values.
_MAX_ID = 2 ** 63 - 1
# simplejwt's jti is uuid4().hex; anything printable ASCII of a sane length is taken.
_JTI = re.compile(r"[\x21-\x7e]{1,255}")
# No token lives longer (a larger exp or iat would overflow a Redis TTL).
_MAX_LIFETIME = 100 * 365 * 86400


@dataclass(frozen=True)
class OldClaims:
    """A simplejwt token's verified claims."""

    legacy_id: int
    jti: str
    iat: int
    exp: int
    token_type: str


def not_old(exc: TokenInvalid) -> bool:
    """Whether the old codec's refusal means the token is no old token at all (another key
    or algorithm, or no JWT), so authsvc's own refusal is the answer, rather than an old
    token refused for a reason."""
    return exc.reason == "bad_signature"


class SimpleJwtCodec:
    """Verifies simplejwt tokens; refuses every one after `accept_until`."""

    def __init__(self, settings: MigrationSettings, leeway: int) -> None:
        self._s = settings
        self._leeway = leeway
        self._until = settings.accept_until_epoch()

    def accepting(self, now: float) -> bool:
        return self._s.enabled and now < self._until

    def decode(self, token: str, expected_type: str, now: float) -> OldClaims:
        """Verify signature, algorithm, times and type; TokenInvalid with a reason."""
        if not self.accepting(now):
            raise TokenInvalid("bad_signature")
        payload = verified_payload(
            token, self._s.simplejwt_signing_key, self._s.simplejwt_algorithm,
            issuer=self._s.simplejwt_issuer, audience=self._s.simplejwt_audience,
            required=["exp", "jti", "token_type"])
        claims = self._claims(payload)
        if not (0 <= claims.iat <= now + _MAX_LIFETIME and 0 < claims.exp <= now + _MAX_LIFETIME):
            raise TokenInvalid("malformed", "Token times are out of range")
        check_times(claims.exp, claims.iat, claims.token_type, expected_type, now, self._leeway)
        return claims

    def _claims(self, payload: dict[str, Any]) -> OldClaims:
        raw_id = payload.get(self._s.simplejwt_user_id_claim)
        if isinstance(raw_id, str) and raw_id.isascii() and raw_id.isdigit() and len(raw_id) < 20:
            raw_id = int(raw_id)
        jti, exp, token_type = payload["jti"], payload["exp"], payload["token_type"]
        iat = payload.get("iat", 0)  # simplejwt always sets it; older tokens may not
        for value in (raw_id, exp, iat):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TokenInvalid("malformed", "Token claim is malformed")
        assert isinstance(raw_id, int)
        if not 1 <= raw_id <= _MAX_ID or not isinstance(jti, str) or not _JTI.fullmatch(jti):
            raise TokenInvalid("malformed", "Token claim is malformed")
        if not isinstance(token_type, str):
            raise TokenInvalid("malformed", "Token claim token_type is malformed")
        return OldClaims(legacy_id=raw_id, jti=jti, iat=iat, exp=exp, token_type=token_type)

"""The [mfa] encryption key's two jobs: sealing TOTP secrets for the database (AES-256-GCM,
bound to their user, so a row copied onto another account does not open) and hashing
recovery codes (HMAC-SHA-256: a stolen table alone cannot be guessed through offline)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1:"
_NONCE = 12
# Recovery codes: 12 characters of 31 letters and digits (59 bits), shown as xxxx-xxxx-xxxx;
# no 0/o or 1/l/i, so they survive being read off paper and typed back.
CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
CODE_LENGTH = 12
RECOVERY_CODES = 10


def _derive(key: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"authsvc mfa " + purpose).derive(key.encode())


def new_recovery_codes() -> list[str]:
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        codes.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:]}")
    return codes


def normalize_code(code: str) -> str:
    """A recovery code as typed: case, spaces and dashes do not matter."""
    return "".join(c for c in code.lower() if c not in " -\t")


class MfaKey:
    def __init__(self, key: str) -> None:
        if len(key.encode()) < 32:
            raise ValueError("the [mfa] encryption key must be at least 32 bytes")
        self._aead = AESGCM(_derive(key, b"totp secrets"))
        self._code_key = _derive(key, b"recovery codes")

    @staticmethod
    def _bound(user_id: int) -> bytes:
        return f"authsvc totp secret of user {user_id}".encode()

    def seal(self, user_id: int, secret: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, secret.encode(), self._bound(user_id))
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, user_id: int, sealed: str) -> str | None:
        """The secret, or None when it does not open with this key for this user (another
        key, another user's row, tampered)."""
        if not sealed.startswith(_VERSION):
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed.removeprefix(_VERSION))
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], self._bound(user_id)).decode()
        except (ValueError, InvalidTag):
            return None

    def code_hash(self, user_id: int, code: str) -> str:
        message = f"{user_id}:{normalize_code(code)}".encode()
        return hmac.new(self._code_key, message, hashlib.sha256).hexdigest()

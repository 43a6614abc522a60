"""Links in mail jobs, sealed for the worker: a queued job (in Redis, its AOF and snapshots,
RQ's failed registry) holds a live reset, verification or "this wasn't me" link only as
AES-256-GCM ciphertext. The key is derived (HKDF-SHA256) from the JWT secret, which the API
and the worker both hold, under a label of its own: it signs nothing and opens nothing else.
The sealed text is bound to its job and recipient, so it opens in no other job.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1."
_INFO = b"authsvc mail-job links v1"
_NONCE_BYTES = 12


class UnsealError(Exception):
    """The sealed link does not open: another secret, another job, or altered text."""


def link_key(jwt_secret: str) -> bytes:
    """The 256-bit link key, derived from the JWT secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=_INFO).derive(jwt_secret.encode())


def _context(job: str, to: str) -> bytes:
    return f"{job}\n{to}".encode()


def seal(key: bytes, link: str, *, job: str, to: str) -> str:
    """`link` encrypted and authenticated for `job` sent to `to`."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, link.encode(), _context(job, to))
    return VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(key: bytes, sealed: str, *, job: str, to: str) -> str:
    """The link `seal` was given; UnsealError if it was sealed otherwise or altered."""
    if not sealed.startswith(VERSION):
        raise UnsealError("unknown sealed-link format")
    try:
        raw = base64.urlsafe_b64decode(sealed[len(VERSION):].encode())
        opened = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _context(job, to))
        return opened.decode()
    except (InvalidTag, ValueError) as exc:  # ValueError: bad base64, too short, bad UTF-8
        raise UnsealError("the sealed link does not open with this secret") from exc

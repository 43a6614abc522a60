"""Django's password hashes, verified as they are stored (`authsvc import-django` keeps them).

Each format is checked with the library that made it (hashlib's PBKDF2 and scrypt,
argon2-cffi, bcrypt) on the password exactly as typed: Django hashes what it is given, with
no NFKC (authsvc normalises only what it hashes itself). Digests are compared in constant
time. A successful check is followed by a re-hash to argon2id (passwords.py); nothing here
ever makes a Django hash.

Formats, as Django 5.2 writes them:
  pbkdf2_sha256$<iterations>$<salt>$<base64 digest>   (also pbkdf2_sha1)
  argon2$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash> (argon2i too)
  bcrypt_sha256$$2b$<cost>$<salt+hash>                 (bcrypt of the SHA-256 hex digest)
  bcrypt$$2b$<cost>$<salt+hash>
  scrypt$<n>$<salt>$<r>$<p>$<base64 digest>
  !<anything>                                          (unusable: no password login)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import argon2
import bcrypt
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Accepted at import: a stored hash of any other form is not taken (its user is skipped).
FORMATS = ("pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt", "scrypt")
UNUSABLE_PREFIX = "!"
# A PBKDF2 or scrypt cost beyond these is no hash Django made: refused rather than computed
# (a row written to make every login burn minutes of CPU).
_MAX_PBKDF2_ITERATIONS = 10_000_000
_MAX_SCRYPT_MEMORY = 256 * 2 ** 20  # bytes: 128 * n * r
_BCRYPT_MAX_BYTES = 72  # bcrypt reads no further; bcrypt 5 refuses longer input instead
_argon2 = argon2.PasswordHasher()


def hash_format(stored: str) -> str | None:
    """The Django format of a stored hash ("unusable" for `!…`), or None if it is none."""
    if stored.startswith(UNUSABLE_PREFIX):
        return "unusable"
    algorithm, sep, _ = stored.partition("$")
    return algorithm if sep and algorithm in FORMATS else None


def is_django_hash(stored: str) -> bool:
    return hash_format(stored) is not None


def verify(stored: str, password: str) -> bool:
    """Whether `password` matches the Django hash `stored`; False for an unusable or
    malformed one (never an exception: a bad row refuses its login, nothing more)."""
    algorithm = hash_format(stored)
    raw = password.encode("utf-8", "surrogatepass")
    try:
        if algorithm in ("pbkdf2_sha256", "pbkdf2_sha1"):
            return _pbkdf2(stored, raw)
        if algorithm == "argon2":
            return _argon2_verify(stored, raw)
        if algorithm == "bcrypt_sha256":
            return _bcrypt(stored, hashlib.sha256(raw).hexdigest().encode())
        if algorithm == "bcrypt":
            return _bcrypt(stored, raw)
        if algorithm == "scrypt":
            return _scrypt(stored, raw)
    except (ValueError, TypeError, binascii.Error, OverflowError, MemoryError):
        return False
    return False


def _pbkdf2(stored: str, raw: bytes) -> bool:
    algorithm, iterations, salt, digest = stored.split("$", 3)
    rounds = int(iterations)
    if not 1 <= rounds <= _MAX_PBKDF2_ITERATIONS or not salt:
        return False
    expected = base64.b64decode(digest, validate=True)
    name = "sha256" if algorithm == "pbkdf2_sha256" else "sha1"
    computed = hashlib.pbkdf2_hmac(name, raw, salt.encode(), rounds, dklen=len(expected) or None)
    return bool(expected) and hmac.compare_digest(computed, expected)


def _argon2_verify(stored: str, raw: bytes) -> bool:
    # Django stores argon2-cffi's encoded hash behind "argon2": "argon2$argon2id$v=19$...".
    encoded = "$" + stored.split("$", 1)[1]
    try:
        return _argon2.verify(encoded, raw)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _bcrypt(stored: str, secret: bytes) -> bool:
    # "bcrypt$$2b$12$..." and "bcrypt_sha256$$2b$12$...": the bcrypt hash follows the first $.
    encoded = stored.split("$", 1)[1].encode()
    return bool(bcrypt.checkpw(secret[:_BCRYPT_MAX_BYTES], encoded))


def _scrypt(stored: str, raw: bytes) -> bool:
    _, n, salt, r, p, digest = stored.split("$", 5)
    work, block, parallel = int(n), int(r), int(p)
    memory = 128 * work * block
    if not (work >= 2 and work & (work - 1) == 0 and block >= 1 and 1 <= parallel <= 16
            and memory <= _MAX_SCRYPT_MEMORY and salt):
        return False
    expected = base64.b64decode(digest, validate=True)
    computed = hashlib.scrypt(raw, salt=salt.encode(), n=work, r=block, p=parallel,
                              maxmem=2 * memory + 2 ** 20, dklen=len(expected))
    return bool(expected) and hmac.compare_digest(computed, expected)

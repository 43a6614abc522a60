"""Django's password hashes, verified as they are stored (`authsvc import-django` keeps them).

Each format is parsed and its costs bounded first, then checked with the library that made
it (hashlib's PBKDF2 and scrypt, argon2-cffi, bcrypt) on the password exactly as typed:
Django hashes what it is given, with no NFKC (authsvc normalises only what it hashes
itself). Digests are compared in constant time. A successful check is followed by a re-hash
to argon2id (passwords.py); nothing here ever makes a Django hash.

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
import re
from collections.abc import Callable

import argon2
import bcrypt
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Accepted at import: a stored hash of any other form is not taken (its user is skipped).
FORMATS = ("pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt", "scrypt")
UNUSABLE_PREFIX = "!"
MAX_LENGTH = 255  # users.password_hash
# Costs past these are no hash Django made (its 5.2 defaults: PBKDF2 1,000,000 rounds,
# argon2 m=100 MiB t=2 p=8, bcrypt 12, scrypt n=2^14 r=8 p=5): refused, never computed, so a
# row written to make each login burn minutes of CPU or gigabytes of memory costs nothing.
_MAX_PBKDF2_ITERATIONS = 3_000_000
_MAX_ARGON2_MEMORY_KIB = 128 * 1024
_MAX_ARGON2_WORK = 2 * 102400 * 2  # memory (KiB) x passes: twice Django's default
_MAX_PARALLELISM = 16
_MAX_ARGON2_LANES = 8  # each lane a thread inside one of the pool's slots
_MAX_BCRYPT_COST = 14
_MAX_SCRYPT_MEMORY = 256 * 2 ** 20  # bytes: 128 * n * r
_MAX_SCRYPT_WORK = 2 ** 21          # n * r * p (Django's default: 5 * 2^17)
_DIGEST_BYTES = {"pbkdf2_sha256": 32, "pbkdf2_sha1": 20, "scrypt": 64}
_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_BCRYPT_MAX_BYTES = 72  # bcrypt reads no further; bcrypt 5 refuses longer input instead
_argon2 = argon2.PasswordHasher()

Check = Callable[[bytes], bool]


def hash_format(stored: str) -> str | None:
    """The Django format of a stored hash ("unusable" for `!…`), or None if it is none."""
    if stored.startswith(UNUSABLE_PREFIX):
        return "unusable"
    algorithm, sep, _ = stored.partition("$")
    return algorithm if sep and algorithm in FORMATS else None


def is_django_hash(stored: str) -> bool:
    return hash_format(stored) is not None


def importable(stored: str) -> bool:
    """Whether authsvc can keep and verify this hash: a known format, within the column and
    the cost bounds (an unusable one is kept as it is: it never logs in)."""
    if len(stored) > MAX_LENGTH:
        return False
    return hash_format(stored) == "unusable" or _checker(stored) is not None


def verify(stored: str, password: str) -> bool:
    """Whether `password` matches the Django hash `stored`; False for an unusable, malformed
    or over-costed one (never an exception: a bad row refuses its login, nothing more)."""
    check = _checker(stored) if len(stored) <= MAX_LENGTH else None
    if check is None:
        return False
    try:
        return check(password.encode("utf-8", "surrogatepass"))
    except (ValueError, TypeError, OverflowError, MemoryError):
        return False


def _checker(stored: str) -> Check | None:
    """The stored hash parsed and its costs bounded: a check of a password's bytes, or None
    when the hash is malformed, unknown or costs more than any Django made."""
    algorithm = hash_format(stored)
    try:
        if algorithm in ("pbkdf2_sha256", "pbkdf2_sha1"):
            return _pbkdf2(stored)
        if algorithm == "argon2":
            return _argon2_check(stored)
        if algorithm in ("bcrypt_sha256", "bcrypt"):
            return _bcrypt(stored, sha256_first=algorithm == "bcrypt_sha256")
        if algorithm == "scrypt":
            return _scrypt(stored)
    except (ValueError, TypeError, binascii.Error, InvalidHashError):
        return None
    return None


def _digest(algorithm: str, text: str) -> bytes:
    expected = base64.b64decode(text, validate=True)
    if len(expected) != _DIGEST_BYTES[algorithm]:
        raise ValueError("digest of the wrong size")
    return expected


def _pbkdf2(stored: str) -> Check | None:
    algorithm, iterations, salt, digest = stored.split("$", 3)
    rounds = int(iterations)
    if not (iterations.isdigit() and 1 <= rounds <= _MAX_PBKDF2_ITERATIONS and salt):
        return None
    expected = _digest(algorithm, digest)
    name = "sha256" if algorithm == "pbkdf2_sha256" else "sha1"
    return lambda raw: hmac.compare_digest(
        hashlib.pbkdf2_hmac(name, raw, salt.encode(), rounds), expected)


def _argon2_check(stored: str) -> Check | None:
    # Django stores argon2-cffi's encoded hash behind "argon2": "argon2$argon2id$v=19$...".
    encoded = "$" + stored.split("$", 1)[1]
    params = argon2.extract_parameters(encoded)
    if (params.type not in (argon2.Type.ID, argon2.Type.I)
            or params.memory_cost > _MAX_ARGON2_MEMORY_KIB
            or params.memory_cost * params.time_cost > _MAX_ARGON2_WORK
            or params.parallelism > _MAX_ARGON2_LANES):
        return None

    def check(raw: bytes) -> bool:
        try:
            return _argon2.verify(encoded, raw)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return check


def _bcrypt(stored: str, *, sha256_first: bool) -> Check | None:
    # "bcrypt$$2b$12$..." and "bcrypt_sha256$$2b$12$...": the bcrypt hash follows the first $.
    encoded = stored.split("$", 1)[1]
    match = _BCRYPT.fullmatch(encoded)
    if match is None or not 4 <= int(match.group(1)) <= _MAX_BCRYPT_COST:
        return None

    def check(raw: bytes) -> bool:
        # bcrypt_sha256: bcrypt of the SHA-256 hex digest (Django's way past 72 bytes).
        secret = hashlib.sha256(raw).hexdigest().encode() if sha256_first else raw
        return bool(bcrypt.checkpw(secret[:_BCRYPT_MAX_BYTES], encoded.encode()))

    return check


def _scrypt(stored: str) -> Check | None:
    _, n, salt, r, p, digest = stored.split("$", 5)
    work, block, parallel = int(n), int(r), int(p)
    memory = 128 * work * block
    if not (work >= 2 and work & (work - 1) == 0 and block >= 1
            and 1 <= parallel <= _MAX_PARALLELISM and memory <= _MAX_SCRYPT_MEMORY
            and work * block * parallel <= _MAX_SCRYPT_WORK and salt):
        return None
    expected = _digest("scrypt", digest)
    return lambda raw: hmac.compare_digest(hashlib.scrypt(
        raw, salt=salt.encode(), n=work, r=block, p=parallel, maxmem=2 * memory + 2 ** 20,
        dklen=len(expected)), expected)

"""argon2id hashing off the event loop, and the NIST SP 800-63B password policy."""

from __future__ import annotations

import asyncio
import gzip
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from service.config import PasswordSettings
from service.core import django_hashes
from service.store.users import fold


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped blocklist, case-folded (fold); see service/core/data/README.md for its source."""
    raw = resources.files("service.core").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(fold(word) for word in gzip.decompress(raw).decode().split())


def policy_problems(password: str, settings: PasswordSettings, *, username: str = "",
                    email: str = "") -> list[str]:
    """What is wrong with `password` under the policy; empty when it is acceptable.

    Judged on what is hashed (normalise: NFKC), and the blocklist on its case-folded form:
    "ｐａｓｓｗｏｒｄ" in fullwidth letters is hashed, and so logs in, as "password"."""
    problems = []
    hashed = normalise(password)
    if len(hashed) < settings.min_length:
        problems.append(f"This password is too short. It must contain at least "
                        f"{settings.min_length} characters.")
    if max(len(password), len(hashed)) > settings.max_length:
        problems.append(f"Ensure this field has no more than {settings.max_length} characters.")
    folded = fold(password)
    if folded in common_passwords():
        problems.append("This password is too common.")
    for label, value in (("username", username), ("email address", email)):
        if value and (folded == fold(value) or (label == "email address"
                                                 and folded == fold(value.split("@")[0]))):
            problems.append(f"The password is too similar to the {label}.")
    return problems


def usable(password_hash: str) -> bool:
    """Whether any password can match the stored hash (`!…`: none; a passwordless account,
    or Django's unusable password)."""
    return not password_hash.startswith(django_hashes.UNUSABLE_PREFIX)


def normalise(password: str) -> str:
    """NFKC before hashing and verifying (NIST SP 800-63B 5.1.1.2): the same password typed
    on another keyboard or OS, composed or decomposed, is the same password."""
    return unicodedata.normalize("NFKC", password)


@dataclass(frozen=True)
class Verification:
    valid: bool
    new_hash: str | None = None  # set when the stored hash used older parameters


class PasswordHasher:
    """argon2id in a bounded thread pool: memory-hard hashes never run unbounded or on the loop."""

    def __init__(self, settings: PasswordSettings) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.time_cost, memory_cost=settings.memory_cost,
            parallelism=settings.parallelism, type=argon2.Type.ID)
        self._pool = ThreadPoolExecutor(max_workers=settings.max_concurrent_hashes,
                                        thread_name_prefix="argon2")
        # Spent on unknown users so a miss costs what a wrong password costs.
        self._dummy_hash = self._hasher.hash("dummy password for unknown users")

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(normalise(password))

    def _verify_sync(self, stored_hash: str | None, password: str) -> Verification:
        if stored_hash is not None and django_hashes.is_django_hash(stored_hash):
            return self._verify_django(stored_hash, password)
        password = normalise(password)
        try:
            self._hasher.verify(stored_hash or self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Verification(False)
        if stored_hash is None:
            return Verification(False)
        if self._hasher.check_needs_rehash(stored_hash):
            return Verification(True, self._hasher.hash(password))
        return Verification(True)

    def _verify_django(self, stored_hash: str, password: str) -> Verification:
        """An imported Django hash, checked on the password as typed (Django hashed it so),
        then re-made as argon2id. An unusable one (`!…`) costs what an unknown user costs."""
        if django_hashes.hash_format(stored_hash) == "unusable":
            return self._verify_sync(None, password)
        if not django_hashes.verify(stored_hash, password):
            return Verification(False)
        return Verification(True, self.hash_sync(password))

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.hash_sync, password)

    async def verify(self, stored_hash: str | None, password: str) -> Verification:
        """Check `password`; with `stored_hash=None` spend the same work and fail."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._verify_sync, stored_hash, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

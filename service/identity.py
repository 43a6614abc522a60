"""Usernames and emails: what is valid, and the normalised form uniqueness is judged on."""

from __future__ import annotations

import re
import unicodedata

USERNAME_MAX = 150
EMAIL_MAX = 254
_USERNAME_PUNCTUATION = frozenset("._-+")
# Deliberately permissive (RFC 5322 is not what users type); the mail server has the last word.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.][^@\s]*\.[^@\s.]{2,}", re.UNICODE)


def fold(text: str) -> str:
    """NFKC + case folding: the form unique indexes and look-ups compare."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def username_problem(username: str) -> str | None:
    """Why `username` is not acceptable, or None."""
    if not 1 <= len(username) <= USERNAME_MAX:
        return f"Ensure this field has 1 to {USERNAME_MAX} characters."
    for char in unicodedata.normalize("NFKC", username):
        category = unicodedata.category(char)
        if not (category.startswith("L") or category.startswith("M") or category == "Nd"
                or char in _USERNAME_PUNCTUATION):
            return ("Enter a valid username. This value may contain only letters, "
                    "numbers, and ./+/-/_ characters.")
    return None


def email_problem(email: str) -> str | None:
    """Why `email` is not acceptable, or None."""
    if len(email) > EMAIL_MAX:
        return f"Ensure this field has no more than {EMAIL_MAX} characters."
    if not _EMAIL.fullmatch(email) or ".." in email.rsplit("@", 1)[1]:
        return "Enter a valid email address."
    return None


def canonical_username(username: str) -> str:
    return unicodedata.normalize("NFKC", username)


def canonical_email(email: str) -> str:
    """Emails are stored lower-cased (API.md)."""
    return unicodedata.normalize("NFKC", email).lower()

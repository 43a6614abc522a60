"""Usernames and emails: what is valid, and the normalised form uniqueness is judged on."""

from __future__ import annotations

import unicodedata

from service.store.mail import EMAIL_MAX, plain_address
from service.store.users import fold

USERNAME_MAX = 150
# The folded forms' columns (users.username_norm, users.email_norm): case folding can grow a
# text (ß -> ss), so the folded form is bounded too, never left to the database to refuse.
USERNAME_NORM_MAX = 600
EMAIL_NORM_MAX = 1000
_USERNAME_PUNCTUATION = frozenset("._-+")


def _invisible(char: str) -> bool:
    """Marks that render as nothing (default-ignorable): they would make look-alike names."""
    code = ord(char)
    return (code == 0x034F or 0x17B4 <= code <= 0x17B5 or 0x180B <= code <= 0x180F
            or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF)


def username_problem(username: str) -> str | None:
    """Why `username` is not acceptable, or None. Judged on the NFKC form that is stored."""
    canonical = canonical_username(username)
    if not 1 <= len(canonical) <= USERNAME_MAX or len(fold(canonical)) > USERNAME_NORM_MAX:
        return f"Ensure this field has 1 to {USERNAME_MAX} characters."
    for index, char in enumerate(canonical):
        category = unicodedata.category(char)
        # Combining marks belong to letters of many scripts, but never start a name.
        mark_ok = category.startswith("M") and index > 0 and not _invisible(char)
        if not (category.startswith("L") or category == "Nd" or mark_ok
                or char in _USERNAME_PUNCTUATION):
            return ("Enter a valid username. This value may contain only letters, "
                    "numbers, and ./+/-/_ characters.")
    return None


def email_problem(email: str) -> str | None:
    """Why `email` is not acceptable, or None. Judged on the form that is stored and mailed
    to (canonical_email), never on the raw text: NFKC turns "⑴" into "(1)" (a comment to a
    mail client) and "🄁" into "0," (a second address), and can grow a text eighteen-fold."""
    canonical = canonical_email(email)
    if len(canonical) > EMAIL_MAX or len(fold(canonical)) > EMAIL_NORM_MAX:
        return f"Ensure this field has no more than {EMAIL_MAX} characters."
    if not plain_address(canonical):
        return "Enter a valid email address."
    return None


def canonical_username(username: str) -> str:
    return unicodedata.normalize("NFKC", username)


def canonical_email(email: str) -> str:
    """The stored form: NFKC, lower-cased (API.md), and NFKC again, as lower-casing can
    undo a normalisation."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email).lower())

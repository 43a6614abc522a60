"""Sentences on rate limits, mail caps, password checks and the cut-over from Django that
depend on the settings."""

from __future__ import annotations

from service.config import Settings


def throttle(s: Settings, scope: str, per: str | None) -> tuple[str, tuple[str, ...]]:
    """A sentence on the rate limit and the 429 it brings, when rate limiting is on; `per`:
    what is limited besides the client IP (None: the client IP only)."""
    if not s.rate_limit.enabled:
        return "", ()
    rate = getattr(s.rate_limit, scope)
    also = f" and, separately, per {per}" if per else " (IPv6: per /64)"
    return f" Rate-limited to {rate} per client IP{also}.", ("TooManyRequests",)


def mail_cap(s: Settings) -> str:
    """A sentence on the hourly cap of reset and verification mails per address."""
    return (f" At most {s.password_reset.max_mails_per_hour} such mails (reset links and "
            "verification links together) go to one address per hour; past that the answer "
            "is the same 200 and nothing is sent.")


def reauth_note(s: Settings) -> str:
    """Sentences on the limits a password check of a signed-in user runs into."""
    note = ""
    if s.rate_limit.enabled:
        note += f" Each check spends the client IP's login budget ({s.rate_limit.login})."
    if s.lockout.enabled:
        note += (f" After {s.lockout.max_failures} wrong passwords within {s.lockout.window} s "
                 "the account's checks are refused (429) until the window ends.")
    return note



def cutover_note(s: Settings, kind: str) -> str:
    """A sentence on the old simplejwt tokens accepted during the cut-over (when it is on)."""
    if not s.migration.enabled:
        return ""
    return (f" Until {s.migration.accept_until}, {kind} minted by the Django REST Framework + "
            "simplejwt service this one replaces are accepted too (README, Moving in from "
            "Django).")

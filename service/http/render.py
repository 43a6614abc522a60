"""Response bodies: the JSON objects the API answers with. Every moment is rendered by
`rfc3339`, so the whole API speaks one date format."""

from __future__ import annotations

import datetime as dt
from typing import Any

from service.config import MfaSettings
from service.core.mfa import Status
from service.core.tokens import TokenPair
from service.store.cache import CachedUser
from service.store.passkeys import Passkey
from service.store.sessions import SessionInfo
from service.store.users import User


def rfc3339(moment: dt.datetime | float) -> str:
    """RFC 3339 in UTC with a `Z`, as DRF renders it (a fraction only when there is one).
    Takes a datetime (naive ones are UTC: SQLite hands them back so) or a Unix time."""
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.fromtimestamp(moment, dt.UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().removesuffix("+00:00") + "Z"


def profile_json(user: CachedUser) -> dict[str, str]:
    """profile/'s answer."""
    return {"username": user.username, "email": user.email,
            "display_name": user.display_name, "role": user.role}


def tokens_json(pair: TokenPair) -> dict[str, str]:
    """A session's token pair, as register/, login/ and password/change/ answer it."""
    return {"refresh": pair.refresh, "access": pair.access}


def session_json(session: SessionInfo, current_sid: str) -> dict[str, Any]:
    """One row of sessions/; `current` marks the session of the asking token."""
    return {"id": session.sid, "created": rfc3339(session.created),
            "last_used": rfc3339(session.last_used), "user_agent": session.user_agent,
            "ip": session.ip, "current": session.sid == current_sid}


def user_json(user: User, mfa_methods: list[str]) -> dict[str, Any]:
    """The admin API's user object; `id` is the tokens' `sub`, as an integer."""
    return {"id": user.id, "username": user.username, "email": user.email,
            "display_name": user.display_name, "role": user.role,
            "is_active": user.is_active, "date_joined": rfc3339(user.date_joined),
            "mfa_methods": mfa_methods}


def mfa_status_json(status: Status, settings: MfaSettings) -> dict[str, Any]:
    """mfa/'s answer: the caller's second factors."""
    return {"methods": status.factors.methods(),
            "totp": {"enabled": status.factors.totp, "pending": status.pending,
                     "confirmed_at": rfc3339(status.confirmed_at)
                     if status.confirmed_at else None},
            "recovery_codes_left": status.factors.codes_left,
            "webauthn": {"credentials": status.factors.passkeys},
            "has_password": status.has_password,
            "enrolment_required": status.enrolment_required,
            "step_up_max_age": settings.step_up_max_age}


def passkey_json(passkey: Passkey) -> dict[str, Any]:
    """One of the caller's passkeys; `id` is the credential id (base64url)."""
    return {"id": passkey.credential_id, "name": passkey.name,
            "created": rfc3339(passkey.created_at),
            "last_used": rfc3339(passkey.last_used_at) if passkey.last_used_at else None,
            "transports": list(passkey.transports), "backup_eligible": passkey.backup_eligible,
            "backup_state": passkey.backup_state, "discoverable": passkey.discoverable}

"""Request parsing: bytes -> JSON object -> plain dataclasses, with DRF-shaped field errors."""

from __future__ import annotations

import json
from typing import Any

from service.config import Settings
from service.core.accounts import PasswordChangeInput, RegisterInput
from service.core.identity import (
    canonical_email,
    canonical_username,
    email_problem,
    username_problem,
)
from service.core.mfa import METHODS, ReauthInput
from service.core.mfa_login import MfaLoginInput
from service.core.passwords import policy_problems
from service.core.recovery import ResetConfirmInput
from service.core.sessions import LoginInput
from service.errors import MalformedRequest, UnsupportedMediaType, ValidationFailed
from service.store.mail import EMAIL_MAX

REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
NOT_STRING = "Not a valid string."
NO_NUL = "Null characters are not allowed."
BLANK = "This field may not be blank."
BAD_UNICODE = "Invalid characters: unpaired surrogate escapes are not text."
DISPLAY_NAME_MAX = 150
TOKEN_MAX = 4096
RESET_TOKEN_MAX = 256
DEVICE_TOKEN_MAX = 200
MFA_TOKEN_MAX = 100
CODE_MAX = 64
ROLE_MAX = 64


def parse_json_object(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The body as a JSON object; anything else is a 4xx naming what was wrong."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if not body:
        raise MalformedRequest("Request body is empty: send a JSON object.")
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f'Unsupported media type "{media_type or "none"}" in request: send application/json.')
    try:
        data = json.loads(body)
    # ValueError covers JSONDecodeError, bad UTF-8 and integers past Python's digit limit.
    except (ValueError, RecursionError) as exc:
        raise MalformedRequest(f"JSON parse error - {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedRequest(
            f"Invalid data. Expected a JSON object, but got {type(data).__name__}.")
    return data


def encodable(value: str) -> bool:
    """False for lone surrogates (JSON allows "\\ud800"; UTF-8, argon2 and SQL do not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Fields:
    """Collects every field's error before raising, as DRF does."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.errors: dict[str, list[str]] = {}

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def string(self, name: str, *, max_length: int, required: bool = True, trim: bool = True,
               allow_blank: bool = False, default: str | None = None) -> str | None:
        if name not in self.data:
            if required:
                self.fail(name, REQUIRED)
            return default
        value = self.data[name]
        if value is None:
            self.fail(name, NOT_NULL)
            return None
        if not isinstance(value, str):
            self.fail(name, NOT_STRING)
            return None
        if "\x00" in value:
            self.fail(name, NO_NUL)
            return None
        if not encodable(value):
            self.fail(name, BAD_UNICODE)
            return None
        if trim:
            value = value.strip()
        if not value and not allow_blank:
            self.fail(name, BLANK)
            return None
        if len(value) > max_length:
            self.fail(name, f"Ensure this field has no more than {max_length} characters.")
            return None
        return value

    def object(self, name: str) -> dict[str, Any] | None:
        """A JSON object field (a WebAuthn credential, as the browser's toJSON() gives it)."""
        if name not in self.data:
            self.fail(name, REQUIRED)
            return None
        value = self.data[name]
        if not isinstance(value, dict):
            self.fail(name, "Expected an object.")
            return None
        return value

    def done(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)


def _passwords(fields: Fields, max_length: int) -> str | None:
    # Passwords are never trimmed: spaces are characters like any other (NIST 800-63B).
    password = fields.string("password", max_length=max_length, trim=False)
    password2 = fields.string("password2", max_length=max_length, trim=False)
    if password is not None and password2 is not None and password != password2:
        fields.fail("password2", "Passwords do not match.")
    return password


def register_input(data: dict[str, Any], settings: Settings) -> RegisterInput:
    """Every rule that needs no database, collected in `errors`; the role is resolved."""
    f = Fields(data)
    username = f.string("username", max_length=10_000)
    if username is not None and (problem := username_problem(username)):
        f.fail("username", problem)
    email = f.string("email", max_length=10_000)
    if email is not None and (problem := email_problem(email)):
        f.fail("email", problem)
    password = _passwords(f, settings.passwords.max_length)
    display_name = f.string("display_name", max_length=DISPLAY_NAME_MAX, required=False,
                            allow_blank=True, default="")
    role = f.string("role", max_length=ROLE_MAX, required=False,
                    default=settings.auth.default_role)
    if role is not None and role not in settings.auth.self_register_roles:
        f.fail("role", f'"{role}" is not a role you can register with.')
    if password is not None and "password" not in f.errors:
        for problem in policy_problems(password, settings.passwords, username=username or "",
                                       email=email or ""):
            f.fail("password", problem)
    return RegisterInput(canonical_username(username or ""), canonical_email(email or ""),
                         password or "", display_name or "", role or "", f.errors)


def login_input(data: dict[str, Any], max_password: int,
                device_cookie: str | None = None) -> LoginInput:
    """The device token comes from the body or, failing that, the authsvc_device cookie."""
    f = Fields(data)
    identifier = f.string("username_or_email", max_length=EMAIL_MAX)
    password = f.string("password", max_length=max_password, trim=False)
    device = f.string("device_token", max_length=DEVICE_TOKEN_MAX, required=False,
                      default=device_cookie)
    f.done()
    assert identifier is not None and password is not None
    return LoginInput(identifier, password, device)


def token_input(data: dict[str, Any], name: str) -> str:
    f = Fields(data)
    token = f.string(name, max_length=TOKEN_MAX)
    f.done()
    assert token is not None
    return token


def email_input(data: dict[str, Any]) -> str:
    f = Fields(data)
    email = f.string("email", max_length=10_000)
    if email is not None and (problem := email_problem(email)):
        f.fail("email", problem)
    f.done()
    assert email is not None
    return canonical_email(email)


def reset_confirm_input(data: dict[str, Any], max_password: int) -> ResetConfirmInput:
    f = Fields(data)
    token = f.string("token", max_length=RESET_TOKEN_MAX)
    password = _passwords(f, max_password)
    f.done()
    assert token is not None and password is not None
    return ResetConfirmInput(token, password)


def profile_patch_input(data: dict[str, Any]) -> str | None:
    """The new display_name, or None when it was not sent; other fields are ignored."""
    f = Fields(data)
    display_name = f.string("display_name", max_length=DISPLAY_NAME_MAX, required=False,
                            allow_blank=True)
    f.done()
    return display_name


def password_change_input(data: dict[str, Any], max_password: int) -> PasswordChangeInput:
    f = Fields(data)
    old = f.string("old_password", max_length=max_password, trim=False)
    password = _passwords(f, max_password)
    f.done()
    assert old is not None and password is not None
    return PasswordChangeInput(old, password)


def account_delete_input(data: dict[str, Any], max_password: int) -> str | None:
    """DELETE profile/: the account's current password (never trimmed); None when absent,
    which only a passwordless account may send (core/accounts.py says so)."""
    f = Fields(data)
    password = f.string("password", max_length=max_password, trim=False, required=False)
    f.done()
    return password


def _method(f: Fields, allowed: tuple[str, ...], default: str | None = None) -> str | None:
    method = f.string("method", max_length=32, required=default is None, default=default)
    if method is not None and method not in allowed:
        f.fail("method", f'"{method}" is not a valid choice: one of {", ".join(allowed)}.')
        return None
    return method


def mfa_login_input(data: dict[str, Any]) -> MfaLoginInput:
    """login/mfa/: the pending sign-in's token, a method and its code."""
    f = Fields(data)
    token = f.string("mfa_token", max_length=MFA_TOKEN_MAX)
    method = _method(f, METHODS)
    if method == "webauthn":
        credential = f.object("credential")
        f.done()
        assert token is not None
        return MfaLoginInput(token, method, "", credential)
    code = f.string("code", max_length=CODE_MAX)
    f.done()
    assert token is not None and method is not None and code is not None
    return MfaLoginInput(token, method, code)


def one_string(data: dict[str, Any], name: str, max_length: int) -> str:
    """A body of one required string field (`code` at mfa/totp/confirm/, `mfa_token` at
    login/mfa/webauthn/options/, `name` of a passkey)."""
    f = Fields(data)
    value = f.string(name, max_length=max_length)
    f.done()
    assert value is not None
    return value


def code_input(data: dict[str, Any]) -> str:
    """mfa/totp/confirm/: the authenticator's first code."""
    return one_string(data, "code", CODE_MAX)


def reauth_input(data: dict[str, Any], max_password: int) -> ReauthInput:
    """reauth/: {"password"} (method "password" by default) or {"method", "code"}."""
    f = Fields(data)
    method = _method(f, ("password", *METHODS),
                     default="password" if "code" not in data and "credential" not in data
                     else None)
    if method == "webauthn":
        credential = f.object("credential")
        f.done()
        return ReauthInput(method, "", credential)
    if method == "password":
        secret = f.string("password", max_length=max_password, trim=False)
    else:
        secret = f.string("code", max_length=CODE_MAX)
    f.done()
    assert method is not None and secret is not None
    return ReauthInput(method, secret)


PASSKEY_NAME_MAX = 64


def mfa_token_input(data: dict[str, Any]) -> str:
    """login/mfa/webauthn/options/: the pending sign-in's token."""
    return one_string(data, "mfa_token", MFA_TOKEN_MAX)


def credential_input(data: dict[str, Any]) -> dict[str, Any]:
    """webauthn/login/: the browser's assertion."""
    f = Fields(data)
    credential = f.object("credential")
    f.done()
    assert credential is not None
    return credential


def passkey_register_input(data: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """webauthn/register/: the browser's new credential and a name for it (optional)."""
    f = Fields(data)
    credential = f.object("credential")
    name = f.string("name", max_length=PASSKEY_NAME_MAX, required=False, default="")
    f.done()
    assert credential is not None
    return credential, name or ""


def passkey_name_input(data: dict[str, Any]) -> str:
    return one_string(data, "name", PASSKEY_NAME_MAX)

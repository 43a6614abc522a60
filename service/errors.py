"""One exception tree for the whole service, mapped to API.md's bodies in http/error_handler.py.

    AuthServiceError                    500  {"detail": "Internal server error"}
    ├── ValidationFailed                400  {"<field>": ["..."], "non_field_errors": [...]}
    ├── MalformedRequest                400  {"detail": "..."}   (unparseable body)
    ├── AuthenticationFailed            401  {"detail", "code"}
    │   ├── NotAuthenticated                 code=not_authenticated
    │   ├── InvalidCredentials               code=no_active_account
    │   ├── TokenInvalid                     code=token_not_valid, reason=...
    │   ├── MfaTokenInvalid                  code=mfa_token_invalid (sign in again)
    │   ├── MfaCodeInvalid                   code=mfa_code_invalid (+ reason for a passkey)
    │   └── PasskeyRefused                   code=webauthn_failed, reason=...
    ├── PermissionDenied                403
    │   ├── EmailNotVerified                 code=email_not_verified
    │   ├── StepUpRequired                   code=step_up_required, methods=[...]
    │   └── MfaEnrolmentRequired             code=mfa_enrolment_required
    ├── NotFound                        404
    ├── PayloadTooLarge                 413
    ├── UnsupportedMediaType            415
    ├── RateLimited                     429  + Retry-After
    │   └── LoginLocked                      (lockout of an identifier, untrusted devices)
    └── ServiceUnavailable              503  (Redis or the database cannot be reached)
"""

from __future__ import annotations


class AuthServiceError(Exception):
    status_code = 500
    detail = "Internal server error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        if detail is not None:
            self.detail = detail

    def body(self) -> dict[str, object]:
        return {"detail": self.detail}

    def headers(self) -> dict[str, str]:
        return {}


class ValidationFailed(AuthServiceError):
    """Invalid input: field name -> list of messages, DRF's shape."""

    status_code = 400
    detail = "Invalid input."

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(self.detail)
        self.errors = errors

    @classmethod
    def on(cls, field: str, message: str) -> ValidationFailed:
        return cls({field: [message]})

    def body(self) -> dict[str, object]:
        return dict(self.errors)


class MalformedRequest(AuthServiceError):
    status_code = 400
    detail = "Malformed request."


class AuthenticationFailed(AuthServiceError):
    status_code = 401
    detail = "Authentication failed."
    code = "authentication_failed"
    # Bearer endpoints add WWW-Authenticate; login/ and token/refresh/ do not need it.
    bearer_challenge = False

    def body(self) -> dict[str, object]:
        return {"detail": self.detail, "code": self.code}

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="api"'} if self.bearer_challenge else {}


class NotAuthenticated(AuthenticationFailed):
    detail = "Authentication credentials were not provided."
    code = "not_authenticated"
    bearer_challenge = True


class InvalidCredentials(AuthenticationFailed):
    detail = "No active account found with the given credentials"
    code = "no_active_account"


class TokenInvalid(AuthenticationFailed):
    """A token was refused; `reason` says why (token_expired, token_revoked, ...)."""

    detail = "Token is invalid or expired"
    code = "token_not_valid"

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason

    def body(self) -> dict[str, object]:
        return {"detail": self.detail, "code": self.code, "reason": self.reason}

    def for_bearer(self) -> TokenInvalid:
        self.bearer_challenge = True
        return self


class MfaTokenInvalid(AuthenticationFailed):
    detail = "This sign-in has expired or was already used: sign in again."
    code = "mfa_token_invalid"


class MfaCodeInvalid(AuthenticationFailed):
    detail = "The code is wrong, or was already used."
    code = "mfa_code_invalid"

    def __init__(self, reason: str | None = None) -> None:
        super().__init__("The passkey was refused." if reason else None)
        self.reason = reason

    def body(self) -> dict[str, object]:
        return {**super().body(), **({"reason": self.reason} if self.reason else {})}


class PasskeyRefused(AuthenticationFailed):
    """A WebAuthn assertion was refused; `reason` names the check that failed."""

    detail = "The passkey was refused."
    code = "webauthn_failed"

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    def body(self) -> dict[str, object]:
        return {"detail": self.detail, "code": self.code, "reason": self.reason}


class PermissionDenied(AuthServiceError):
    status_code = 403
    detail = "You do not have permission to perform this action."


class EmailNotVerified(PermissionDenied):
    detail = "Verify your email address before signing in."
    code = "email_not_verified"

    def body(self) -> dict[str, object]:
        return {"detail": self.detail, "code": self.code}


class StepUpRequired(PermissionDenied):
    """A sensitive operation wants a recent sign-in: POST reauth/ with one of `methods`.
    403, not 401: clients written for simplejwt take every 401 for "refresh or sign out"."""

    detail = "Confirm it is you: enter your password or a code again, then try again."
    code = "step_up_required"

    def __init__(self, methods: list[str]) -> None:
        super().__init__()
        self.methods = methods

    def body(self) -> dict[str, object]:
        return {"detail": self.detail, "code": self.code, "methods": self.methods}


class MfaEnrolmentRequired(PermissionDenied):
    detail = "Your role requires two-factor sign-in: set up an authenticator app first."
    code = "mfa_enrolment_required"

    def body(self) -> dict[str, object]:
        return {"detail": self.detail, "code": self.code}


class NotFound(AuthServiceError):
    status_code = 404
    detail = "Not found."


class MethodNotAllowed(AuthServiceError):
    status_code = 405
    detail = "Method not allowed."

    def __init__(self, detail: str | None = None, allow: str = "") -> None:
        super().__init__(detail)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow} if self.allow else {}


class PayloadTooLarge(AuthServiceError):
    status_code = 413
    detail = "Request body is too large."

    def headers(self) -> dict[str, str]:
        # The rest of the body is still on its way: the server drops it and closes, so a
        # client must not send its next request on this connection (RFC 9112, 9.6).
        return {"Connection": "close"}


class UnsupportedMediaType(AuthServiceError):
    status_code = 415
    detail = 'Unsupported media type: send a JSON body with "Content-Type: application/json".'


class RateLimited(AuthServiceError):
    status_code = 429
    detail = "Request was throttled."

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(
            f"Request was throttled. Expected available in {self.retry_after} seconds.")

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class LoginLocked(RateLimited):
    """Too many failed logins for an identifier from devices it has never signed in from."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.detail = ("Too many failed sign-in attempts for this account. Try again in "
                       f"{self.retry_after} seconds, or from a device that has signed in before.")


class ServiceUnavailable(AuthServiceError):
    status_code = 503
    detail = "Service temporarily unavailable, try again shortly."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}

"""Thin endpoints: parse, one service call, render. No SQL, Redis or JWT here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.core.accounts import AccountService
from service.core.authentication import Authenticator, Caller
from service.core.deletion import AccountDeletion
from service.core.health import Health
from service.core.mfa import MfaService
from service.core.mfa_login import MfaLogin
from service.core.passkeys import PasskeyService
from service.core.recovery import RecoveryService
from service.core.sessions import Client, SessionService, SignIn
from service.core.tokens import ENROLMENT_SCOPE
from service.errors import MfaEnrolmentRequired, TokenInvalid
from service.http import inputs
from service.http.render import (
    mfa_status_json,
    passkey_json,
    profile_json,
    session_json,
    tokens_json,
)
from service.http.web import bearer_token, client_ip, empty_response, json_body, json_response

Endpoint = Callable[[Request], Awaitable[Response]]


def _accounts(request: Request) -> AccountService:
    return request.app.state.accounts  # type: ignore[no-any-return]


def _sessions(request: Request) -> SessionService:
    return request.app.state.sessions  # type: ignore[no-any-return]


def _authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator  # type: ignore[no-any-return]


def _recovery(request: Request) -> RecoveryService:
    return request.app.state.recovery  # type: ignore[no-any-return]


def _deletion(request: Request) -> AccountDeletion:
    return request.app.state.deletion  # type: ignore[no-any-return]


def _mfa(request: Request) -> MfaService:
    return request.app.state.mfa  # type: ignore[no-any-return]


def _passkeys(request: Request) -> PasskeyService:
    return request.app.state.passkeys  # type: ignore[no-any-return]


def _max_password(request: Request) -> int:
    return request.app.state.settings.passwords.max_length  # type: ignore[no-any-return]


def _client(request: Request) -> Client:
    ip = client_ip(request, request.app.state.settings.server.trusted_proxies)
    return Client(ip, request.headers.get("user-agent", "")[:256])


async def register(request: Request) -> Response:
    data = inputs.register_input(await json_body(request), request.app.state.settings)
    signed_in = await _accounts(request).register(data, _client(request))
    user = signed_in.user
    body: dict[str, object] = {"user": {"username": user.username, "email": user.email,
                                        "display_name": user.display_name}}
    if signed_in.tokens is not None:  # none while the email awaits verification
        body.update(tokens_json(signed_in.tokens))
    verify = request.app.state.settings.auth.verify_emails
    send = BackgroundTask(_recovery(request).send_verification, user.email) if verify else None
    return json_response(body, 201, background=send)


DEVICE_COOKIE = "authsvc_device"


async def login(request: Request) -> Response:
    data = inputs.login_input(await json_body(request), _max_password(request),
                              request.cookies.get(DEVICE_COOKIE))
    signed_in = await _sessions(request).login(data, _client(request))
    if signed_in.mfa is not None:  # the password was right; login/mfa/ finishes
        return json_response({"mfa_required": True, "mfa_token": signed_in.mfa.token,
                              "methods": signed_in.mfa.methods})
    return _signed_in(request, signed_in)


async def login_mfa(request: Request) -> Response:
    data = inputs.mfa_login_input(await json_body(request))
    mfa_login: MfaLogin = request.app.state.mfa_login
    return _signed_in(request, await mfa_login.complete(data, _client(request)))


def _signed_in(request: Request, signed_in: SignIn) -> Response:
    """login/'s answer (and login/mfa/'s): the user, the tokens and the device cookie."""
    user = signed_in.user
    assert signed_in.tokens is not None and signed_in.device_token is not None
    response = json_response({"user": {"username": user.username, "email": user.email},
                              **tokens_json(signed_in.tokens),
                              "device_token": signed_in.device_token})
    # OWASP session cookies: never readable by scripts, never sent in the clear or by other
    # sites, sent to login/ only. "Strict" as RFC 6265bis spells it: Starlette types the value
    # lower-case but writes it as given.
    response.set_cookie(DEVICE_COOKIE, signed_in.device_token,
                        max_age=request.app.state.settings.lockout.device_ttl,
                        path=f"{AUTH_PREFIX}login", secure=True, httponly=True,
                        samesite="Strict")  # type: ignore[arg-type]
    return response


async def logout(request: Request) -> Response:
    token = inputs.token_input(await json_body(request), "refresh_token")
    await _sessions(request).logout(token)
    return empty_response(205)


async def token_refresh(request: Request) -> Response:
    token = inputs.token_input(await json_body(request), "refresh")
    refreshed = await _sessions(request).refresh(token, lambda: _client(request))
    body = {"access": refreshed.access}
    if refreshed.refresh is not None:
        body["refresh"] = refreshed.refresh
    return json_response(body)


async def password_reset(request: Request) -> Response:
    email = inputs.email_input(await json_body(request))
    service = _recovery(request)
    await service.request_reset(email, _client(request).ip)
    return json_response({"message": "Password reset link sent"},
                         background=BackgroundTask(service.send_reset, email))


async def verify_email(request: Request) -> Response:
    token = inputs.token_input(await json_body(request), "token")
    await _recovery(request).verify_email(token)
    return json_response({"message": "Email verified"})


async def verify_email_resend(request: Request) -> Response:
    email = inputs.email_input(await json_body(request))
    service = _recovery(request)
    await service.request_verification(email, _client(request).ip)
    return json_response({"message": "Verification email sent"},
                         background=BackgroundTask(service.send_verification, email))


async def not_me(request: Request) -> Response:
    token = inputs.token_input(await json_body(request), "token")
    await _recovery(request).not_me(token, _client(request).ip)
    return json_response({"message": "Every session has ended; a password reset link has "
                                     "been sent"})


async def password_reset_confirm(request: Request) -> Response:
    data = inputs.reset_confirm_input(await json_body(request), _max_password(request))
    await _recovery(request).confirm_reset(data)
    return json_response({"message": "Password has been reset"})


async def bearer_caller(request: Request, *, enrolment: bool = False) -> Caller:
    """The authenticated caller of a Bearer endpoint; 401 with WWW-Authenticate otherwise.
    A token limited to the enrolment of a second factor reaches only the endpoints that say
    `enrolment` (403 mfa_enrolment_required elsewhere)."""
    try:
        caller = await _authenticator(request).authenticate(bearer_token(request))
    except TokenInvalid as exc:
        raise exc.for_bearer() from None
    if caller.grant.scope == ENROLMENT_SCOPE and not enrolment:
        raise MfaEnrolmentRequired()
    return caller


async def profile(request: Request) -> Response:
    return json_response(profile_json((await bearer_caller(request, enrolment=True)).user))


async def profile_update(request: Request) -> Response:
    caller = await bearer_caller(request)
    display_name = inputs.profile_patch_input(await json_body(request))
    updated = await _accounts(request).update_profile(caller, display_name)
    return json_response(profile_json(updated))


async def profile_delete(request: Request) -> Response:
    caller = await bearer_caller(request)
    password = inputs.account_delete_input(await json_body(request), _max_password(request))
    # The password is checked as password/change/ checks the old one: one hash in flight per
    # user, wrong passwords counted like failed logins.
    async with _accounts(request).reauthenticated(caller, password, _client(request)):
        await _deletion(request).delete(caller.user.id)
    return empty_response(204)


async def sessions(request: Request) -> Response:
    caller = await bearer_caller(request)
    listed = await _sessions(request).list_sessions(caller)
    return json_response([session_json(session, caller.sid) for session in listed])


async def session_delete(request: Request) -> Response:
    caller = await bearer_caller(request)
    await _sessions(request).end_session(caller, request.path_params["sid"])
    return empty_response(204)


async def logout_all(request: Request) -> Response:
    caller = await bearer_caller(request)
    await _sessions(request).logout_all(caller)
    return empty_response(205)


async def password_change(request: Request) -> Response:
    caller = await bearer_caller(request)
    data = inputs.password_change_input(await json_body(request), _max_password(request))
    pair = await _accounts(request).change_password(caller, data, _client(request))
    return json_response({"access": pair.access, "refresh": pair.refresh})


async def reauth(request: Request) -> Response:
    caller = await bearer_caller(request, enrolment=True)
    data = inputs.reauth_input(await json_body(request), _max_password(request))
    access, auth_time = await _mfa(request).reauthenticate(caller, data, _client(request))
    return json_response({"access": access, "auth_time": auth_time})


async def mfa_status(request: Request) -> Response:
    caller = await bearer_caller(request, enrolment=True)
    status = await _mfa(request).status(caller)
    return json_response(mfa_status_json(status, request.app.state.settings.mfa))


async def totp_enrol(request: Request) -> Response:
    caller = await bearer_caller(request, enrolment=True)
    enrolment = await _mfa(request).enrol(caller)
    return json_response({"secret": enrolment.secret, "otpauth_uri": enrolment.uri,
                          "qr_svg": enrolment.qr_svg}, 201)


async def totp_confirm(request: Request) -> Response:
    caller = await bearer_caller(request, enrolment=True)
    code = inputs.code_input(await json_body(request))
    confirmed = await _mfa(request).confirm(caller, code, _client(request))
    return json_response({"recovery_codes": confirmed.recovery_codes,
                          "access": confirmed.access})


async def totp_disable(request: Request) -> Response:
    await _mfa(request).disable(await bearer_caller(request))
    return empty_response(204)


async def recovery_codes(request: Request) -> Response:
    codes = await _mfa(request).regenerate_codes(await bearer_caller(request))
    return json_response({"recovery_codes": codes})


async def passkey_register_options(request: Request) -> Response:
    caller = await bearer_caller(request, enrolment=True)
    return json_response({"publicKey": await _passkeys(request).registration_options(caller)})


async def passkey_register(request: Request) -> Response:
    caller = await bearer_caller(request, enrolment=True)
    credential, name = inputs.passkey_register_input(await json_body(request))
    done = await _passkeys(request).register(caller, credential, name)
    return json_response({"credential": passkey_json(done.passkey),
                          "recovery_codes": done.recovery_codes, "access": done.access}, 201)


async def passkey_list(request: Request) -> Response:
    caller = await bearer_caller(request)
    return json_response([passkey_json(p) for p in await _passkeys(request).list(caller)])


async def passkey_rename(request: Request) -> Response:
    caller = await bearer_caller(request)
    name = inputs.passkey_name_input(await json_body(request))
    renamed = await _passkeys(request).rename(caller, request.path_params["id"], name)
    return json_response(passkey_json(renamed))


async def passkey_delete(request: Request) -> Response:
    caller = await bearer_caller(request)
    await _passkeys(request).delete(caller, request.path_params["id"])
    return empty_response(204)


async def passkey_login_options(request: Request) -> Response:
    return json_response({"publicKey": await _passkeys(request).login_options(
        _client(request))})


async def passkey_login(request: Request) -> Response:
    credential = inputs.credential_input(await json_body(request))
    signed_in = await _passkeys(request).login(credential, _client(request),
                                               request.cookies.get(DEVICE_COOKIE))
    return _signed_in(request, signed_in)


async def mfa_passkey_options(request: Request) -> Response:
    token = inputs.mfa_token_input(await json_body(request))
    return json_response({"publicKey": await _passkeys(request).mfa_options(
        token, _client(request))})


async def reauth_passkey_options(request: Request) -> Response:
    caller = await bearer_caller(request, enrolment=True)
    return json_response({"publicKey": await _passkeys(request).reauth_options(
        caller, _client(request))})


async def password_remove(request: Request) -> Response:
    await _passkeys(request).remove_password(await bearer_caller(request))
    return empty_response(204)


async def health(request: Request) -> Response:
    health_check: Health = request.app.state.health
    await health_check.check()
    return json_response({"status": "ok"})


def by_method(handlers: Mapping[str, Endpoint]) -> Endpoint:
    """One endpoint running each method's own handler; HEAD runs GET's, never a write's.

    Starlette answers HEAD on every route that has GET, with that route's endpoint: an endpoint
    shared by GET and a write, branching on `request.method`, ran the write for HEAD."""
    if "GET" in handlers and any(h is handlers["GET"] for m, h in handlers.items() if m != "GET"):
        raise ValueError("a GET handler must serve GET (and so HEAD) only")
    if len(handlers) == 1:  # the route itself refuses every other method (405)
        return next(iter(handlers.values()))
    table = {**handlers, **({"HEAD": handlers["GET"]} if "GET" in handlers else {})}

    async def endpoint(request: Request) -> Response:
        return await table[request.method](request)

    return endpoint


def slash_optional(path: str, endpoint: Endpoint | Mapping[str, Endpoint],
                   methods: Sequence[str] = ()) -> list[BaseRoute]:
    """Serve `path/` and `path` alike: API.md forbids a 404 for a missing trailing slash.

    `endpoint` is a handler for `methods`, or a handler per method: {"GET": ..., "PATCH": ...}."""
    handlers = endpoint if isinstance(endpoint, Mapping) else dict.fromkeys(methods, endpoint)
    served, allowed = by_method(handlers), list(handlers)
    return [Route(path, served, methods=allowed),
            Route(path.rstrip("/"), served, methods=allowed, include_in_schema=False)]


AUTH_PREFIX = "/api/v1/auth/"

# The router tries routes in order, and no two paths overlap: the most requested come first
# (a profile GET matched as the 11th route spent 5 % of its time in Route.matches).
ROUTES: list[BaseRoute] = [
    *slash_optional(AUTH_PREFIX + "profile/", {"GET": profile, "PATCH": profile_update,
                                               "DELETE": profile_delete}),
    *slash_optional(AUTH_PREFIX + "token/refresh/", token_refresh, ["POST"]),
    *slash_optional(AUTH_PREFIX + "register/", register, ["POST"]),
    *slash_optional(AUTH_PREFIX + "login/", login, ["POST"]),
    *slash_optional(AUTH_PREFIX + "login/mfa/", login_mfa, ["POST"]),
    *slash_optional(AUTH_PREFIX + "logout/", logout, ["POST"]),
    *slash_optional(AUTH_PREFIX + "password-reset/", password_reset, ["POST"]),
    *slash_optional(AUTH_PREFIX + "password-reset/confirm/", password_reset_confirm, ["POST"]),
    *slash_optional(AUTH_PREFIX + "sessions/", sessions, ["GET"]),
    *slash_optional(AUTH_PREFIX + "sessions/{sid}/", session_delete, ["DELETE"]),
    *slash_optional(AUTH_PREFIX + "logout-all/", logout_all, ["POST"]),
    *slash_optional(AUTH_PREFIX + "password/change/", password_change, ["POST"]),
    *slash_optional(AUTH_PREFIX + "security/not-me/", not_me, ["POST"]),
    *slash_optional(AUTH_PREFIX + "verify-email/", verify_email, ["POST"]),
    *slash_optional(AUTH_PREFIX + "verify-email/resend/", verify_email_resend, ["POST"]),
    *slash_optional(AUTH_PREFIX + "reauth/", reauth, ["POST"]),
    *slash_optional(AUTH_PREFIX + "mfa/", mfa_status, ["GET"]),
    *slash_optional(AUTH_PREFIX + "mfa/totp/", {"POST": totp_enrol, "DELETE": totp_disable}),
    *slash_optional(AUTH_PREFIX + "mfa/totp/confirm/", totp_confirm, ["POST"]),
    *slash_optional(AUTH_PREFIX + "mfa/recovery-codes/", recovery_codes, ["POST"]),
    *slash_optional(AUTH_PREFIX + "login/mfa/webauthn/options/", mfa_passkey_options, ["POST"]),
    *slash_optional(AUTH_PREFIX + "reauth/webauthn/options/", reauth_passkey_options,
                    ["POST"]),
    *slash_optional(AUTH_PREFIX + "webauthn/register/options/", passkey_register_options,
                    ["POST"]),
    *slash_optional(AUTH_PREFIX + "webauthn/register/", passkey_register, ["POST"]),
    *slash_optional(AUTH_PREFIX + "webauthn/credentials/", passkey_list, ["GET"]),
    *slash_optional(AUTH_PREFIX + "webauthn/credentials/{id}/",
                    {"PATCH": passkey_rename, "DELETE": passkey_delete}),
    *slash_optional(AUTH_PREFIX + "webauthn/login/options/", passkey_login_options, ["POST"]),
    *slash_optional(AUTH_PREFIX + "webauthn/login/", passkey_login, ["POST"]),
    *slash_optional(AUTH_PREFIX + "password/", password_remove, ["DELETE"]),
    Route("/healthz", health, methods=["GET"]),
]

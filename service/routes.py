"""Thin endpoints: parse, one service call, render. No SQL, Redis or JWT here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import schemas
from .errors import TokenInvalid
from .redis_store import CachedUser
from .services import AuthService, Session
from .web import bearer_token, client_ip, empty_response, json_body, json_response

Endpoint = Callable[[Request], Awaitable[Response]]


def _service(request: Request) -> AuthService:
    return request.app.state.service  # type: ignore[no-any-return]


def _max_password(request: Request) -> int:
    return request.app.state.settings.passwords.max_length  # type: ignore[no-any-return]


def _ip(request: Request) -> str:
    return client_ip(request, request.app.state.settings.server.trusted_proxies)


def _profile(user: CachedUser) -> dict[str, str]:
    return {"username": user.username, "email": user.email,
            "display_name": user.display_name, "role": user.role}


def _tokens(session: Session) -> dict[str, str]:
    return {"refresh": session.tokens.refresh, "access": session.tokens.access}


async def register(request: Request) -> Response:
    data = schemas.register_input(await json_body(request), request.app.state.settings)
    session = await _service(request).register(data, _ip(request))
    user = session.user
    return json_response({"user": {"username": user.username, "email": user.email,
                                   "display_name": user.display_name},
                          **_tokens(session)}, 201)


async def login(request: Request) -> Response:
    data = schemas.login_input(await json_body(request), _max_password(request))
    session = await _service(request).login(data, _ip(request))
    user = session.user
    return json_response({"user": {"username": user.username, "email": user.email},
                          **_tokens(session)})


async def logout(request: Request) -> Response:
    token = schemas.token_input(await json_body(request), "refresh_token")
    await _service(request).logout(token)
    return empty_response(205)


async def token_refresh(request: Request) -> Response:
    token = schemas.token_input(await json_body(request), "refresh")
    refreshed = await _service(request).refresh(token)
    body = {"access": refreshed.access}
    if refreshed.refresh is not None:
        body["refresh"] = refreshed.refresh
    return json_response(body)


async def password_reset(request: Request) -> Response:
    email = schemas.email_input(await json_body(request))
    service = _service(request)
    await service.request_reset(email, _ip(request))
    return json_response({"message": "Password reset link sent"},
                         background=BackgroundTask(service.send_reset, email))


async def password_reset_confirm(request: Request) -> Response:
    data = schemas.reset_confirm_input(await json_body(request), _max_password(request))
    await _service(request).confirm_reset(data)
    return json_response({"message": "Password has been reset"})


async def _bearer_user(request: Request) -> CachedUser:
    try:
        return await _service(request).authenticate(bearer_token(request))
    except TokenInvalid as exc:
        raise exc.for_bearer() from None


async def profile(request: Request) -> Response:
    user = await _bearer_user(request)
    if request.method == "GET":
        return json_response(_profile(user))
    display_name = schemas.profile_patch_input(await json_body(request))
    return json_response(_profile(await _service(request).update_profile(user, display_name)))


async def health(request: Request) -> Response:
    await _service(request).health()
    return json_response({"status": "ok"})


def _both(path: str, endpoint: Endpoint, methods: list[str]) -> list[BaseRoute]:
    """Serve `path/` and `path` alike: API.md forbids a 404 for a missing trailing slash."""
    return [Route(path, endpoint, methods=methods),
            Route(path.rstrip("/"), endpoint, methods=methods, include_in_schema=False)]


AUTH_PREFIX = "/api/v1/auth/"

ROUTES: list[BaseRoute] = [
    *_both(AUTH_PREFIX + "register/", register, ["POST"]),
    *_both(AUTH_PREFIX + "login/", login, ["POST"]),
    *_both(AUTH_PREFIX + "logout/", logout, ["POST"]),
    *_both(AUTH_PREFIX + "password-reset/", password_reset, ["POST"]),
    *_both(AUTH_PREFIX + "password-reset/confirm/", password_reset_confirm, ["POST"]),
    *_both(AUTH_PREFIX + "profile/", profile, ["GET", "PATCH"]),
    *_both(AUTH_PREFIX + "token/refresh/", token_refresh, ["POST"]),
    Route("/healthz", health, methods=["GET"]),
]

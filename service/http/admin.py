"""Thin admin endpoints (role `admin` only): authenticate, check the role, one service call.

The AdminService is built with the other services in app.py's lifespan (`app.state.admin`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from service.core.admin import AdminService
from service.core.mfa import MfaService
from service.core.step_up import StepUp
from service.http import admin_inputs
from service.http.render import user_json
from service.http.routes import AUTH_PREFIX, bearer_caller, slash_optional
from service.http.web import empty_response, json_body, json_response
from service.store.cache import CachedUser
from service.store.users import User


def _admin_service(request: Request) -> AdminService:
    return request.app.state.admin  # type: ignore[no-any-return]


def _mfa(request: Request) -> MfaService:
    return request.app.state.mfa  # type: ignore[no-any-return]


async def _as_admin(request: Request, *, write: bool = False) -> tuple[AdminService, CachedUser]:
    """401 without a valid token, 403 unless the caller's current role is admin; a write
    also wants a recent sign-in from an admin with a second factor ([mfa] step_up_for_admin,
    403 step_up_required)."""
    caller = await bearer_caller(request)
    AdminService.require_admin(caller.user)
    if write and request.app.state.settings.mfa.step_up_for_admin:
        step_up: StepUp = request.app.state.step_up
        await step_up.require(caller)
    return _admin_service(request), caller.user


async def _users_json(request: Request, users: list[User]) -> list[dict[str, Any]]:
    methods = await _mfa(request).methods_of([user.id for user in users])
    return [user_json(user, methods[user.id]) for user in users]


def _page_link(request: Request, page: int) -> str:
    if page == 1:  # DRF drops `page` from the link to the first page
        return str(request.url.remove_query_params("page"))
    return str(request.url.include_query_params(page=page))


async def list_users(request: Request) -> Response:
    service, _ = await _as_admin(request)
    query = admin_inputs.list_query(request.query_params)
    page = await service.list_users(query)
    return json_response({
        "count": page.count,
        "next": _page_link(request, query.page + 1) if page.has_next else None,
        "previous": _page_link(request, query.page - 1) if query.page > 1 else None,
        "results": await _users_json(request, page.users)})


async def user_detail(request: Request) -> Response:
    service, _ = await _as_admin(request)
    user = await service.get_user(admin_inputs.user_id(request.path_params["id"]))
    return json_response((await _users_json(request, [user]))[0])


async def user_update(request: Request) -> Response:
    service, actor = await _as_admin(request, write=True)
    user_id = admin_inputs.user_id(request.path_params["id"])
    user = await service.get_user(user_id)  # 404 before 400, as DRF does
    patch = admin_inputs.patch_input(await json_body(request),
                                     request.app.state.settings.auth.known_roles())
    updated = await service.update_user(actor, user, patch)
    return json_response((await _users_json(request, [updated]))[0])


async def user_delete(request: Request) -> Response:
    service, actor = await _as_admin(request, write=True)
    await service.delete_user(actor, admin_inputs.user_id(request.path_params["id"]))
    return empty_response(204)


async def revoke_sessions(request: Request) -> Response:
    service, _ = await _as_admin(request, write=True)
    await service.revoke_sessions(admin_inputs.user_id(request.path_params["id"]))
    return empty_response(204)


async def mfa_reset(request: Request) -> Response:
    caller = await bearer_caller(request)
    AdminService.require_admin(caller.user)
    await _mfa(request).admin_reset(caller, admin_inputs.user_id(request.path_params["id"]))
    return empty_response(204)


USERS = AUTH_PREFIX + "users/"

ADMIN_ROUTES: list[BaseRoute] = [
    *slash_optional(USERS, list_users, ["GET"]),
    *slash_optional(USERS + "{id}/", {"GET": user_detail, "PATCH": user_update,
                                      "DELETE": user_delete}),
    *slash_optional(USERS + "{id}/revoke-sessions/", revoke_sessions, ["POST"]),
    *slash_optional(USERS + "{id}/mfa/reset/", mfa_reset, ["POST"]),
]

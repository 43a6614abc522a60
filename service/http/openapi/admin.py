"""The admin API's schemas and paths."""

from __future__ import annotations

from service.config import Settings
from service.http.admin_inputs import MAX_PAGE_SIZE, PAGE_SIZE, SEARCH_MAX
from service.http.inputs import ROLE_MAX
from service.http.openapi.build import AUTH, UTC_TIME, Json, obj, operation, ref, response, string


def admin_schemas(s: Settings) -> Json:
    """The admin API's user, page and update schemas."""
    user = {
        "id": {"type": "integer", "minimum": 1,
               "description": "The user's id: the tokens' `sub` claim, as an integer."},
        "username": string(), "email": string(), "display_name": string(),
        "role": string(maxLength=ROLE_MAX), "is_active": {"type": "boolean"},
        "date_joined": string(UTC_TIME, format="date-time"),
        "mfa_methods": {"type": "array", "items": string(enum=["totp", "recovery_code"]),
                        "description": "What the user's sign-in asks for after the password; "
                                       "empty without a second factor."},
    }
    link = {"type": ["string", "null"], "format": "uri"}
    return {
        "AdminUser": obj(user, list(user)),
        "UserPage": obj({
            "count": {"type": "integer", "minimum": 0,
                      "description": "Users matching the filters, on every page."},
            "next": {**link, "description": "Absolute URL of the next page, or null."},
            "previous": {**link, "description": "Absolute URL of the previous page, or null."},
            "results": {"type": "array", "items": ref("schemas", "AdminUser")},
        }, ["count", "next", "previous", "results"], "Django REST Framework's page shape."),
        "AdminUserUpdate": obj({
            "role": string("One of the known roles (`admin`, `[auth] self_register_roles`, "
                           "`[auth] extra_roles`), else a 400 on `role`; changing it "
                           "refuses every earlier token of the user.",
                           minLength=1, maxLength=ROLE_MAX, enum=list(s.auth.known_roles())),
            "is_active": {"type": "boolean",
                          "description": "`false` refuses every token of the user at once and "
                                         "blocks login; `true` lets them log in again."},
        }, [], "Both optional; other fields are ignored. `{}` changes nothing."),
    }


def _query(name: str, description: str, schema: Json) -> Json:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def _admin_operation(op_id: str, summary: str, description: str, ok: Json, *,
                     body: str | None = None, errors: tuple[str, ...] = (),
                     parameters: list[Json] | None = None) -> Json:
    errors = ("BearerUnauthorized", "Forbidden", *errors, "ServiceUnavailable")
    op = operation(op_id, summary, description, ok, body=body, errors=errors, bearer=True,
                   tag="admin")
    if parameters:
        op["parameters"] = parameters
    return op


def admin_paths() -> Json:
    """The admin API: list, read, change and delete users, end their sessions."""
    user_id = [{"name": "id", "in": "path", "required": True,
                "description": "The user's id; anything not numeric is a 404.",
                "schema": {"type": "integer", "minimum": 1}}]
    listing = [
        _query("page", "1-based page number.", {"type": "integer", "minimum": 1, "default": 1}),
        _query("page_size", "Users per page.", {"type": "integer", "minimum": 1,
                                                "maximum": MAX_PAGE_SIZE, "default": PAGE_SIZE}),
        _query("role", "Only users with this role.", string(maxLength=ROLE_MAX)),
        _query("is_active", "Only active (`true`) or inactive (`false`) users.",
               {"type": "string", "enum": ["true", "false", "1", "0"]}),
        _query("search", "Case-insensitive substring of the username, email or display name; "
               "`%` and `_` are literal.", string(maxLength=SEARCH_MAX)),
    ]
    user = {"200": response("The user.", ref("schemas", "AdminUser"))}
    return {
        AUTH + "users/": {"get": _admin_operation(
            "listUsers", "List users",
            "Ordered by id, paged in Django REST Framework's shape. A bad query value is a 400 "
            "on its name; an empty value applies no filter.",
            {"200": response("One page of users.", ref("schemas", "UserPage"))},
            errors=("BadRequest", "NotFound"), parameters=listing)},
        AUTH + "users/{id}/": {
            "get": _admin_operation("getUser", "Read a user", "Any user, active or not.", user,
                                    errors=("NotFound",), parameters=user_id),
            "patch": _admin_operation(
                "updateUser", "Change a user's role or active state",
                "Changing `role` or deactivating refuses every existing access and refresh "
                "token of the user at once. An admin cannot deactivate or demote themselves "
                "(400 `non_field_errors`).",
                user, body="AdminUserUpdate", errors=("BadRequest", "NotFound"),
                parameters=user_id),
            "delete": _admin_operation(
                "deleteUser", "Delete a user's account",
                "The same hard delete as `DELETE profile/`, without a password: every session "
                "and token of the user is refused at once, the username and email are free "
                "again. An admin cannot delete themselves here (400 `non_field_errors`).",
                {"204": response("No Content: the account is gone. The body is empty.")},
                errors=("BadRequest", "NotFound"), parameters=user_id)},
        AUTH + "users/{id}/revoke-sessions/": {"post": _admin_operation(
            "revokeUserSessions", "Refuse every token of a user",
            "Every access and refresh token issued to the user so far is refused at once; "
            "the user can log in again.",
            {"204": response("No Content: done. The body is empty.")},
            errors=("NotFound",), parameters=user_id)},
        AUTH + "users/{id}/mfa/reset/": {"post": _admin_operation(
            "resetUserMfa", "Remove a user's second factor",
            "For a user who lost their authenticator and recovery codes: every factor of the "
            "user goes, and they sign in with their password alone (a role in "
            "`[mfa] require_for_roles` then reaches only the enrolment). Logged as a security "
            "event and mailed to the user.",
            {"204": response("No Content: done. The body is empty.")},
            errors=("NotFound",), parameters=user_id)},
    }


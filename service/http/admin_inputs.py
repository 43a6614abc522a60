"""The admin API's inputs: query parameters and PATCH bodies parsed into core's ListQuery and
UserPatch, with DRF-shaped field errors."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from service.core.admin import ListQuery, UserPatch
from service.errors import NotFound, ValidationFailed
from service.http.inputs import NO_NUL, NOT_NULL, ROLE_MAX, Fields
from service.store.users import UserFilter

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
SEARCH_MAX = 254
# Ids past this are no row of ours, and would overflow SQLite's 64-bit integers.
_ID = re.compile(r"[0-9]{1,18}")
NOT_BOOLEAN = "Must be a valid boolean."
NOT_INTEGER = "A valid integer is required."


def user_id(raw: str) -> int:
    """A path's user id; anything that is not one is a 404, like an unknown id."""
    if not _ID.fullmatch(raw):
        raise NotFound()
    return int(raw)


def _positive(errors: dict[str, list[str]], name: str, raw: str | None, default: int,
              maximum: int | None = None) -> int:
    """A whole number from 1 up; past 18 digits only `maximum`-less values pass (capped)."""
    if raw is None:
        return default
    digits = raw.lstrip("0")
    if not re.fullmatch(r"[0-9]+", raw):
        errors[name] = [NOT_INTEGER]
    elif not digits:
        errors[name] = ["Ensure this value is greater than or equal to 1."]
    elif maximum is None:
        return int(digits) if len(digits) <= 18 else 10**18
    elif len(digits) > 18 or int(digits) > maximum:
        errors[name] = [f"Ensure this value is less than or equal to {maximum}."]
    else:
        return int(digits)
    return default


def _text(errors: dict[str, list[str]], name: str, raw: str | None, max_length: int) -> str | None:
    """An optional text filter; empty means no filter, as in django-filter."""
    value = (raw or "").strip()
    if "\x00" in value:
        errors[name] = [NO_NUL]
    elif len(value) > max_length:
        errors[name] = [f"Ensure this field has no more than {max_length} characters."]
    return value or None


def _boolean(errors: dict[str, list[str]], name: str, raw: str | None) -> bool | None:
    value = (raw or "").strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    if value:
        errors[name] = [NOT_BOOLEAN]
    return None


def list_query(params: Mapping[str, str]) -> ListQuery:
    """`page`, `page_size`, `role`, `is_active`, `search`; every bad value is a 400 on it."""
    errors: dict[str, list[str]] = {}
    page = _positive(errors, "page", params.get("page"), 1)  # past the last: 404 later
    page_size = _positive(errors, "page_size", params.get("page_size"), PAGE_SIZE, MAX_PAGE_SIZE)
    filters = UserFilter(role=_text(errors, "role", params.get("role"), ROLE_MAX),
                         is_active=_boolean(errors, "is_active", params.get("is_active")),
                         search=_text(errors, "search", params.get("search"), SEARCH_MAX))
    if errors:
        raise ValidationFailed(errors)
    return ListQuery(filters, page, page_size)


def patch_input(data: Mapping[str, Any], roles: Sequence[str]) -> UserPatch:
    """`role` (one of `roles`) and `is_active` (a boolean), both optional; others ignored."""
    fields = Fields(dict(data))
    role = fields.string("role", max_length=ROLE_MAX, required=False)
    if role is not None and role not in roles:  # [auth] AuthSettings.known_roles
        fields.fail("role", f'"{role}" is not a valid choice.')
        role = None
    is_active = data.get("is_active")
    if "is_active" in data and not isinstance(is_active, bool):
        fields.fail("is_active", NOT_NULL if is_active is None else NOT_BOOLEAN)
    fields.done()
    return UserPatch(role, is_active)

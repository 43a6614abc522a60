"""HEAD runs no write handler, anywhere: on every route of the app it answers as GET does,
without a body, or 405 where there is no GET; nothing in the database or Redis changes."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from typing import Any

import httpx
import pytest
import redis
from api import API, USER, bearer, make_admin, register
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.config import Settings
from service.http.routes import by_method

# A body that every write endpoint would act on, had it run.
WRITE = {"display_name": "HEADED", "is_active": False, "role": "admin", "password": "x" * 12,
         "password2": "x" * 12, "old_password": USER["password"], "new_password": "y" * 16,
         "new_password2": "y" * 16, "refresh": "", "refresh_token": "", "token": "t",
         "email": USER["email"], "username": "headed", "username_or_email": USER["username"]}
# Answers differ by the moment they were made, nothing else.
VOLATILE = {"date"}


def _rows(settings: Settings) -> list[tuple[Any, ...]]:
    path = settings.database.url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT * FROM users ORDER BY id").fetchall()


def _redis(sync_redis: redis.Redis, prefix: str) -> dict[bytes, bytes | None]:
    return {key: sync_redis.dump(key) for key in sorted(sync_redis.scan_iter(match=prefix + "*"))}


def _state(settings: Settings, sync_redis: redis.Redis) -> tuple[object, object]:
    return _rows(settings), _redis(sync_redis, settings.redis.prefix)


def test_head_on_every_route_is_get_without_a_body_or_405_and_changes_nothing(
        served: tuple[Any, httpx.Client], settings: Settings, sync_redis: redis.Redis) -> None:
    """Walks app.routes: HEAD with a write body, as an admin, on a real user and session.
    Where the route has GET, HEAD gets GET's status and headers and no body; elsewhere 405.
    The users table and every Redis key of the app are byte for byte what they were."""
    app, client = served
    access = make_admin(client, settings, sync_redis, USER["username"])["access"]
    victim = register(client, username="victim", email="victim@example.com")
    victim_id = _rows(settings)[-1][0]
    auth = bearer(access)
    sid = client.get(API + "sessions/", headers=auth).json()[0]["id"]
    params = {"id": str(victim_id), "sid": sid, "name": "docs.js"}

    routes = [r for r in app.routes if isinstance(r, Route)]
    paths = [re.sub(r"\{(\w+)\}", lambda m: params[m.group(1)], r.path) for r in routes]
    gets = {path: client.get(path, headers=auth)
            for route, path in zip(routes, paths, strict=False) if "GET" in (route.methods or ())}
    before = _state(settings, sync_redis)

    for route, path in zip(routes, paths, strict=False):
        head = client.request("HEAD", path, headers=auth, json=WRITE)
        where = f"HEAD {route.path}"
        assert head.content == b"", where
        if path in gets:
            get = gets[path]
            assert head.status_code == get.status_code, (where, head.status_code)
            assert ({k: v for k, v in head.headers.items() if k not in VOLATILE}
                    == {k: v for k, v in get.headers.items() if k not in VOLATILE}), where
        else:
            assert head.status_code == 405, (where, head.status_code)
            assert "HEAD" not in head.headers["allow"], where

    assert len(routes) >= 30 and len(gets) >= 10
    assert _state(settings, sync_redis) == before
    assert client.get(API + "profile/", headers=auth).json()["display_name"] == "Alice"
    assert client.get(API + "profile/", headers=bearer(victim["access"])).status_code == 200


async def _read(request: Request) -> Response:
    return Response()


async def _write(request: Request) -> Response:
    return Response()


def test_a_get_handler_cannot_also_serve_a_write() -> None:
    """The route table itself refuses an endpoint shared by GET (so HEAD) and a write."""
    with pytest.raises(ValueError):
        by_method({"GET": _read, "PATCH": _read})
    assert by_method({"GET": _read}) is _read
    by_method({"GET": _read, "PATCH": _write})

"""The floor: a bare Starlette app with authsvc's endpoint shapes and no auth work at all.

Same uvicorn settings as the service (1 process, uvloop, httptools, UVICORN_OPTIONS), so a
scenario's req/s divided by the floor's is the share of the framework's ceiling it reaches.
Usage: python bench/floor.py PORT
"""

from __future__ import annotations

import gc
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.http.server import UVICORN_OPTIONS

PREFIX = "/api/v1/auth"
USER = {"username": "floor", "email": "floor@example.com"}
TOKEN = "x" * 200  # about the size of an authsvc JWT


async def profile(request: Request) -> JSONResponse:
    return JSONResponse({**USER, "display_name": "", "role": "user"})


async def refresh(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"access": TOKEN if body.get("refresh") else ""})


async def login(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"user": {**USER, "username": body.get("username_or_email", "")},
                         "refresh": TOKEN, "access": TOKEN})


async def register(request: Request) -> JSONResponse:
    body = await request.json()
    user = {"username": body.get("username", ""), "email": body.get("email", ""),
            "display_name": ""}
    return JSONResponse({"user": user, "refresh": TOKEN, "access": TOKEN}, status_code=201)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[
    Route(f"{PREFIX}/profile/", profile),
    Route(f"{PREFIX}/token/refresh/", refresh, methods=["POST"]),
    Route(f"{PREFIX}/login/", login, methods=["POST"]),
    Route(f"{PREFIX}/register/", register, methods=["POST"]),
    Route("/healthz", healthz),
])


if __name__ == "__main__":
    gc.collect()
    gc.freeze()  # as authsvc serve does (create_app's freeze_heap): same treatment
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, loop="uvloop", http="httptools", **UVICORN_OPTIONS)

"""Security headers on every answer: JSON (success, errors, 404/405, 429, 500), empty bodies,
the OpenAPI document; the docs page keeps its own, narrower CSP."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from api import API, bearer, login, register
from starlette.requests import Request
from starlette.routing import Route
from support import LiveServer, settle

from service.app import create_app
from service.config import Rate, RateLimitSettings, Settings

JSON_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}


def assert_json_headers(response: httpx.Response) -> None:
    """OWASP ASVS 14.4.3-14.4.7 and 8.2.1: the API's four headers, exactly."""
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    for name, value in JSON_HEADERS.items():
        assert response.headers.get(name) == value, f"{where}: {name}={response.headers.get(name)}"


def assert_page_headers(response: httpx.Response) -> None:
    """A page that is not JSON still refuses framing, sniffing, the Referer, and anything
    it does not name."""
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, (where, csp)
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("referrer-policy") == "no-referrer", where


def test_every_endpoint_answers_with_the_security_headers(client: httpx.Client) -> None:
    """Every answer of the contract, successes (token bodies included) and errors alike, carries
    Cache-Control: no-store, nosniff, a deny-all CSP and no-referrer (ASVS 8.2.1, 14.4)."""
    alice = register(client)
    signed_in = login(client)
    answers = [
        signed_in,
        client.get(API + "profile/", headers=bearer(alice["access"])),
        client.head(API + "profile/", headers=bearer(alice["access"])),
        client.patch(API + "profile/", headers=bearer(alice["access"]), json={}),
        client.post(API + "token/refresh/", json={"refresh": alice["refresh"]}),
        client.post(API + "logout/", json={"refresh_token": signed_in.json()["refresh"]}),
        client.post(API + "password-reset/", json={"email": "nobody@example.com"}),
        client.post(API + "password-reset/confirm/",
                    json={"token": "x", "password": "p" * 12, "password2": "p" * 12}),
        client.get(API + "profile/"),                                        # 401
        client.get(API + "profile/", headers=bearer("not.a.token")),         # 401
        client.get(API + "no-such-thing/"),                                  # 404
        client.delete(API + "login/"),                                       # 405
        client.options(API + "login/"),                                      # 405, CORS off
        client.post(API + "login/", content=b"{", headers={"Content-Type": "application/json"}),
        client.post(API + "login/", content=b"x", headers={"Content-Type": "text/plain"}),
        client.post(API + "login/", content=b"x" * 70000,
                    headers={"Content-Type": "application/json"}),           # 413
        client.get("/healthz"),
        client.get("/healthz/"),                                             # 404, no bare 307
        client.get("/api/v1/openapi.json"),
        client.get("/api/v1/docs/"),                                         # 308 to the page
        client.get("/"),                                                     # 307 to the page
    ]
    statuses = sorted({a.status_code for a in answers})
    assert statuses == [200, 205, 307, 308, 400, 401, 404, 405, 413, 415], statuses
    for answer in answers:
        assert_json_headers(answer)


def test_every_route_and_method_answers_with_the_security_headers(
        served: tuple[Any, httpx.Client]) -> None:
    """Whatever the route (admin and session endpoints included), unauthenticated or empty
    requests are answered with the headers: JSON ones exactly, the docs page with its own CSP."""
    app, client = served
    seen = 0
    for route in app.routes:
        path = re.sub(r"\{name\}", "docs.js", re.sub(r"\{\w+\}", "1", route.path))
        for method in sorted(getattr(route, "methods", None) or ["GET"]):
            response = client.request(method, path)
            seen += 1
            if response.headers.get("content-type", "application/json").startswith(
                    "application/json"):
                assert_json_headers(response)
            else:
                assert_page_headers(response)
    assert seen >= 30


def test_docs_page_keeps_its_own_csp(client: httpx.Client) -> None:
    """The docs page may run its own script and style, and nothing else (ASVS 14.4.3)."""
    for path in ("/api/v1/docs", "/api/v1/docs/assets/docs.js", "/api/v1/docs/assets/docs.css"):
        response = client.get(path)
        assert response.status_code == 200
        assert_page_headers(response)
        assert "script-src 'self'" in response.headers["content-security-policy"]


def test_rate_limited_answer_carries_the_headers(settings: Settings, make_client: Any) -> None:
    """429 with Retry-After is an API answer like any other (ASVS 14.4)."""
    client = make_client(settings.replace(rate_limit=RateLimitSettings(login=Rate(1, 60))))
    login(client)
    response = login(client)
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
    assert_json_headers(response)


def test_server_fault_answer_carries_the_headers(settings: Settings,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A crash is a 500 {"detail"} with the same headers and no trace (ASVS 7.4.1, 14.4)."""
    async def crash(request: Request) -> Any:
        raise KeyError("a bug")

    app = create_app(settings)
    app.router.routes.append(Route("/crash", crash))
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.get("/crash")
        settle(client, caplog)
    caplog.clear()  # the crash is the point: keep the crash guard out of this test
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert_json_headers(response)

"""The OpenAPI document at /api/v1/openapi.json and the page at /api/v1/docs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
import redis
from api import (
    API,
    OPENAPI,
    assert_field_errors,
    bearer,
    make_admin,
    register,
    session_id_of,
    user_id_of,
)
from starlette.applications import Starlette
from starlette.routing import Route

from service.config import Settings
from service.http import docs, ui
from service.http.admin import ADMIN_ROUTES
from service.http.routes import ROUTES

# API.md's tables: path -> methods.
CONTRACT = {
    API + "register/": {"post"},
    API + "login/": {"post"},
    API + "logout/": {"post"},
    API + "password-reset/": {"post"},
    API + "password-reset/confirm/": {"post"},
    API + "profile/": {"get", "patch", "delete"},
    API + "token/refresh/": {"post"},
    API + "sessions/": {"get"},
    API + "sessions/{sid}/": {"delete"},
    API + "logout-all/": {"post"},
    API + "password/change/": {"post"},
    API + "security/not-me/": {"post"},
    API + "verify-email/": {"post"},
    API + "verify-email/resend/": {"post"},
    API + "users/": {"get"},
    API + "users/{id}/": {"get", "patch", "delete"},
    API + "users/{id}/revoke-sessions/": {"post"},
    "/api/v1/openapi.json": {"get"},
    "/api/v1/docs": {"get"},
    "/healthz": {"get"},
    "/api/v1/client/authsvc.js": {"get"},
    # Extensions (issue 13, a second factor): not in API.md, never in its way.
    API + "login/mfa/": {"post"},
    API + "reauth/": {"post"},
    API + "mfa/": {"get"},
    API + "mfa/totp/": {"post", "delete"},
    API + "mfa/totp/confirm/": {"post"},
    API + "mfa/recovery-codes/": {"post"},
    API + "users/{id}/mfa/reset/": {"post"},
    # Extensions (issue 14, passkeys).
    API + "webauthn/register/options/": {"post"},
    API + "webauthn/register/": {"post"},
    API + "webauthn/credentials/": {"get"},
    API + "webauthn/credentials/{id}/": {"patch", "delete"},
    API + "webauthn/login/options/": {"post"},
    API + "webauthn/login/": {"post"},
    API + "login/mfa/webauthn/options/": {"post"},
    API + "reauth/webauthn/options/": {"post"},
    API + "password/": {"delete"},
}
ADMIN = {(API + "users/", "get"), (API + "users/{id}/", "get"),
         (API + "users/{id}/", "patch"), (API + "users/{id}/", "delete"),
         (API + "users/{id}/revoke-sessions/", "post"), (API + "users/{id}/mfa/reset/", "post")}
MFA = {(API + "reauth/", "post"), (API + "mfa/", "get"), (API + "mfa/totp/", "post"),
       (API + "mfa/totp/", "delete"), (API + "mfa/totp/confirm/", "post"),
       (API + "mfa/recovery-codes/", "post")}
PASSKEYS = {(API + "webauthn/register/options/", "post"), (API + "webauthn/register/", "post"),
            (API + "webauthn/credentials/", "get"), (API + "webauthn/credentials/{id}/", "patch"),
            (API + "webauthn/credentials/{id}/", "delete"),
            (API + "reauth/webauthn/options/", "post"), (API + "password/", "delete")}
SESSIONS = {(API + "sessions/", "get"), (API + "sessions/{sid}/", "delete"),
            (API + "logout-all/", "post"), (API + "password/change/", "post")}
BEARER = {(API + "profile/", "get"), (API + "profile/", "patch"), (API + "profile/", "delete"),
          *ADMIN, *SESSIONS, *MFA, *PASSKEYS}
# POSTs that take no body.
NO_BODY = {(API + "users/{id}/revoke-sessions/", "post"), (API + "logout-all/", "post"),
           (API + "users/{id}/mfa/reset/", "post"), (API + "mfa/totp/", "post"),
           (API + "mfa/recovery-codes/", "post"), (API + "webauthn/register/options/", "post"),
           (API + "webauthn/login/options/", "post"), (API + "reauth/webauthn/options/", "post")}
# DELETEs that take one.
DELETE_BODY = {(API + "profile/", "delete")}
STATIC = Path(docs.__file__).with_name("static")


def docs_app(settings: Settings | None = None) -> Starlette:
    app = Starlette(routes=docs.routes())
    app.state.settings = settings or Settings()
    return app


class AppClient:
    """GETs through httpx's ASGI transport: these routes need no lifespan and no server."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def get(self, url: str) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                response = await client.get(url)
                await response.aread()
                return response

        return asyncio.run(send())


def docs_client(settings: Settings | None = None) -> AppClient:
    return AppClient(docs_app(settings))


def fetch(settings: Settings | None = None) -> dict[str, Any]:
    response = docs_client(settings).get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def test_document_is_openapi_3_1() -> None:
    response = docs_client().get("/api/v1/openapi.json")
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "authsvc"
    assert doc["info"]["version"]


def test_every_contract_path_has_its_methods() -> None:
    paths = fetch()["paths"]
    assert {path: set(item) for path, item in paths.items()} == CONTRACT


@pytest.mark.parametrize("pages", [False, True])
def test_document_matches_the_router(pages: bool) -> None:
    """Every route is in the document, the hosted pages' only when [ui] enabled serves them."""
    settings = Settings().replace(ui={"enabled": pages})
    paths = fetch(settings)["paths"]
    documented = set()
    for route in [*ROUTES, *ADMIN_ROUTES, *docs.routes(), *ui.routes(settings.ui)]:
        if isinstance(route, Route) and route.include_in_schema:
            methods = {m.lower() for m in route.methods or ()} - {"head"}
            assert set(paths[route.path]) == methods, route.path
            documented.add(route.path)
    assert documented == set(paths)


def test_every_ref_resolves_and_every_component_is_used() -> None:
    doc = fetch()
    used = set(refs(doc))
    for ref in used:
        resolve(doc, {"$ref": ref})
    components = doc["components"]
    declared = {f"#/components/{kind}/{name}" for kind in ("schemas", "responses", "headers")
                for name in components[kind]}
    assert declared - used == set()


def test_bearer_endpoints_declare_401_with_a_challenge() -> None:
    doc = fetch()
    secured = {(path, method) for path, method, op in operations(doc) if op.get("security")}
    assert secured == BEARER
    for path, method in BEARER:
        op = doc["paths"][path][method]
        assert op["security"] == [{"bearerAuth": []}]
        assert "WWW-Authenticate" in resolve(doc, op["responses"]["401"])["headers"]
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert scheme.pop("description").startswith("An access token.")
    assert scheme == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_register_declares_201_and_400() -> None:
    responses = fetch()["paths"][API + "register/"]["post"]["responses"]
    assert {"201", "400"} <= set(responses) and "200" not in responses


def test_logout_answers_205_without_content() -> None:
    responses = fetch()["paths"][API + "logout/"]["post"]["responses"]
    assert "content" not in responses["205"]
    assert not any(status.startswith("2") for status in set(responses) - {"205"})


def test_every_body_declares_413_and_415() -> None:
    with_body = set()
    for path, method, op in operations(fetch()):
        if "requestBody" in op:
            with_body.add((path, method))
            assert {"413", "415", "400"} <= set(op["responses"]), (path, method)
    assert with_body == ({(path, method) for path, methods in CONTRACT.items()
                          for method in methods if method in ("post", "patch")} - NO_BODY
                         | DELETE_BODY)


def test_rate_limited_endpoints_declare_429_with_retry_after() -> None:
    doc = fetch()
    for name in ("register/", "login/", "password-reset/", "verify-email/resend/",
                 "security/not-me/", "password/change/"):
        response = resolve(doc, doc["paths"][API + name]["post"]["responses"]["429"])
        assert "Retry-After" in response["headers"]
    # password/change/ and account deletion can always be a 429: one password check per
    # account at a time.
    quiet = fetch(Settings().replace(rate_limit={"enabled": False}, lockout={"enabled": False}))
    # So can login/mfa/ (one attempt per pending sign-in at a time) and reauth/.
    assert sorted((path, method) for path, method, op in operations(quiet)
                  if "429" in op["responses"]) == [
        (API + "login/mfa/", "post"), (API + "password/change/", "post"),
        (API + "profile/", "delete"), (API + "reauth/", "post")]
    locking_only = fetch(Settings().replace(rate_limit={"enabled": False}))
    assert sorted(path for path, _, op in operations(locking_only) if "429" in op["responses"]) \
        == [API + "login/", API + "login/mfa/", API + "mfa/totp/confirm/",
            API + "password/change/", API + "profile/", API + "reauth/"]


def test_password_limits_follow_settings() -> None:
    doc = fetch(Settings().replace(passwords={"min_length": 15, "max_length": 64}))
    password = doc["components"]["schemas"]["NewPassword"]
    assert (password["minLength"], password["maxLength"]) == (15, 64)
    register = doc["components"]["schemas"]["RegisterRequest"]
    assert register["required"] == ["username", "email", "password", "password2"]


@pytest.mark.parametrize("rotate", [False, True])
def test_refresh_is_required_only_with_rotation(rotate: bool) -> None:
    doc = fetch(Settings().replace(jwt={"rotate_refresh_tokens": rotate}))
    schema = doc["components"]["schemas"]["TokenRefreshResponse"]
    assert set(schema["properties"]) == {"access", "refresh"}
    assert schema["required"] == (["access", "refresh"] if rotate else ["access"])


@pytest.mark.parametrize("rotate", [False, True])
def test_document_passes_openapi_spec_validator(rotate: bool) -> None:
    import openapi_spec_validator as validator
    validator.validate(fetch(Settings().replace(jwt={"rotate_refresh_tokens": rotate})))


def test_document_is_computed_once_per_app() -> None:
    app = docs_app()
    client = AppClient(app)
    first = client.get("/api/v1/openapi.json")
    app.state.settings = Settings().replace(passwords={"min_length": 20})
    assert client.get("/api/v1/openapi.json").content == first.content


def test_docs_page_is_html_with_local_assets_only() -> None:
    client = docs_client()
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy
    html = response.text
    links = re.findall(r'\b(?:src|href)="([^"]*)"', html)
    assert links and not [link for link in links if "http" in link or link.startswith("//")]
    assert re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S) == [""]  # no inline code
    for link in links:  # each relative link reaches something this app serves
        assert client.get(urljoin(str(response.url), link)).status_code == 200, link


@pytest.mark.parametrize("path, status", [("/", 307), ("/api/v1/docs/", 308)])
def test_root_and_docs_with_a_slash_lead_to_the_page(client: httpx.Client, path: str,
                                                     status: int) -> None:
    """`/` and `/api/v1/docs/` were 404s a new user met first: they redirect to the page,
    with the API's security headers; following the redirect lands on the page."""
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["location"] == "/api/v1/docs"
    assert response.content == b""
    for name, value in {"cache-control": "no-store", "x-content-type-options": "nosniff",
                        "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
                        "referrer-policy": "no-referrer"}.items():
        assert response.headers[name] == value, name
    page = client.get(path, follow_redirects=True)
    assert page.status_code == 200 and page.url.path == "/api/v1/docs"
    assert page.headers["content-type"].startswith("text/html")
    assert client.post(path).status_code == 405


@pytest.mark.parametrize("name, media_type", [("docs.js", "text/javascript"),
                                              ("docs.css", "text/css")])
def test_assets_are_served_with_their_content_type(name: str, media_type: str) -> None:
    response = docs_client().get(f"/api/v1/docs/assets/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (STATIC / name).read_bytes()


@pytest.mark.parametrize("name", ["nope.js", "docs.html", "DOCS.JS", "openapi.py",
                                  "..%2Fopenapi.py"])
def test_unknown_asset_is_404(name: str) -> None:
    assert docs_client().get(f"/api/v1/docs/assets/{name}").status_code == 404


def test_page_code_never_writes_markup_or_reaches_out() -> None:
    for name in ("docs.html", "docs.js", "docs.css"):
        text = (STATIC / name).read_text(encoding="utf-8")
        assert "http:" not in text and "https:" not in text, name
        assert ".innerHTML" not in text and "insertAdjacentHTML" not in text, name
        assert "document.write" not in text and "eval(" not in text, name


def test_admin_endpoints_declare_403_and_404() -> None:
    doc = fetch()
    for path, method in ADMIN:
        responses = doc["paths"][path][method]["responses"]
        assert {"401", "403", "404"} <= set(responses), (path, method)
        assert "/{id}/" not in path or doc["paths"][path][method]["parameters"][0] == {
            "name": "id", "in": "path", "required": True,
            "description": "The user's id; anything not numeric is a 404.",
            "schema": {"type": "integer", "minimum": 1}}
    listing = doc["paths"][API + "users/"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "page", "page_size", "role", "is_active", "search"}
    assert "400" in listing["responses"]
    assert doc["components"]["schemas"]["AdminUser"]["properties"]["id"]["type"] == "integer"


def request_schema_names(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Each operation with a body: the name of its request schema."""
    return {(path, method): op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .rsplit("/", 1)[1] for path, method, op in operations(doc) if "requestBody" in op}


def test_no_two_operations_share_a_request_schema() -> None:
    """Bodies that only look alike today (a token, an email) are different requests: each
    operation names its own, so one can change without the other."""
    names = list(request_schema_names(fetch()).values())
    assert sorted(names) == sorted(set(names))


def test_required_request_fields_are_what_an_empty_body_is_refused_for(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """No drift between the document and the API: for every operation whose body declares
    `required` fields, `{}` (sent with the token the operation needs) is a 400 on exactly
    those fields; where it declares none, `{}` is accepted."""
    doc = client.get(OPENAPI).json()
    user = register(client)
    admin = make_admin(client, settings, sync_redis)
    ids = {"id": user_id_of(settings, user["access"]),
           "sid": session_id_of(settings, user["access"])}
    refused = set()
    for (path, method), name in request_schema_names(doc).items():
        schema = doc["components"]["schemas"][name]
        # A body of several forms (reauth/: a password or a code): `{}` is judged as the
        # first, the one taken when nothing says otherwise.
        required = schema["oneOf"][0]["required"] if "oneOf" in schema else schema["required"]
        op = doc["paths"][path][method]
        token = admin if "admin" in op["tags"] else user
        headers = bearer(token["access"]) if "security" in op else {}
        response = client.request(method, path.format(**ids), json={}, headers=headers)
        if not required:
            assert response.status_code == 200, (path, method, response.text)
            continue
        assert_field_errors(response, *required)
        assert sorted(response.json()) == sorted(required), (path, method)
        refused.add((path, method))
    optional_only = {(API + "profile/", "patch"), (API + "users/{id}/", "patch")}
    assert refused == set(request_schema_names(doc)) - optional_only

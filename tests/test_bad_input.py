"""Bad input on every POST/PATCH endpoint is a 4xx in API.md's error shapes, never a 500.

Input validation is stateless, so one live server (its own SQLite file and Redis key prefix)
serves the whole module: hundreds of cases would otherwise start hundreds of servers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api import API, PASSWORD, assert_field_errors, bearer, login, register
from support import LiveServer, app_settings, delete_prefixed, free_port, settle

from service.app import create_app
from service.config import (
    Settings,
)

JSON = {"Content-Type": "application/json"}
LIMIT = 65536

# A body each endpoint accepts as well-formed; profile/ is PATCHed with a Bearer token.
VALID: dict[str, dict[str, str]] = {
    "register/": {"username": "bob", "email": "bob@example.com", "password": PASSWORD,
                  "password2": PASSWORD, "display_name": "Bob", "role": "user"},
    "login/": {"username_or_email": "alice", "password": PASSWORD},
    "logout/": {"refresh_token": "not-a-token"},
    "password-reset/": {"email": "nobody@example.com"},
    "password-reset/confirm/": {"token": "not-a-token", "password": PASSWORD,
                                "password2": PASSWORD},
    "token/refresh/": {"refresh": "not-a-token"},
    "profile/": {"display_name": "Alice"},
}
ENDPOINTS = list(VALID)
FIELDS = [(path, field) for path, body in VALID.items() for field in body]
FIELD_IDS = [f"{path}{field}" for path, field in FIELDS]
PAIRED = {"password": "password2", "password2": "password"}

OVERLONG = {
    "username": "u" * 151, "email": "e" * 250 + "@example.com", "password": "p" * 1025,
    "password2": "p" * 1025, "display_name": "d" * 151, "role": "r" * 65,
    "username_or_email": "a" * 255, "refresh_token": "t" * 5000, "token": "t" * 5000,
    "refresh": "t" * 5000,
}

NOT_AN_OBJECT = {
    "truncated": b'{"username": ',
    "single-quoted": b"{'username': 'bob'}",
    "trailing-garbage": b"{} {}",
    "bare-word": b"nul",
    "array": b"[]",
    "array-of-object": b'[{"email": "bob@example.com"}]',
    "string": b'"text"',
    "number": b"42",
    "null": b"null",
    "true": b"true",
    "empty": b"",
}

WRONG_TYPES = {"number": 12, "float": 1.5, "list": ["x"], "object": {"x": "y"}, "bool": True,
               "null": None}


# -- one live server for the module ----------------------------------------------------------
@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, redis_url: str,
        sqlite_template: Path) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("bad-input")
    prefix = f"authtest-{uuid.uuid4().hex[:10]}:"
    settings = app_settings(tmp, redis_url, prefix, free_port(), sqlite_template,
                            smtp_timeout=1)
    with LiveServer(create_app(settings)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
    delete_prefixed(redis_url, prefix)


@pytest.fixture(scope="module")
def alice(api: httpx.Client) -> dict[str, Any]:
    """alice's register/ answer: her tokens drive the Bearer endpoint."""
    return register(api)


def own_user(client: httpx.Client, path: str) -> dict[str, Any]:
    """For cases that crash the server: they get their own (per-test) server and user, so a
    crash logged after the response cannot land in another test."""
    return register(client) if path == "profile/" else {}


def send(api: httpx.Client, alice: dict[str, Any], path: str, *, method: str | None = None,
         headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    """POST to `path` (PATCH with alice's Bearer token for profile/)."""
    all_headers = dict(headers or {})
    if path.rstrip("/") == "profile":
        all_headers.update(bearer(alice["access"]))
    verb = method or ("PATCH" if path.rstrip("/") == "profile" else "POST")
    return api.request(verb, API + path, headers=all_headers, **kwargs)


def send_json_text(api: httpx.Client, alice: dict[str, Any], path: str,
                   body: bytes) -> httpx.Response:
    return send(api, alice, path, content=body, headers=JSON)


# -- shape checks ---------------------------------------------------------------------------
def assert_detail(response: httpx.Response, status: int) -> None:
    """API.md error table: `{"detail": "..."}` with the given status."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail"}, body
    assert isinstance(body["detail"], str) and body["detail"]


def with_field(path: str, field: str, value: Any, *, paired: bool = True) -> dict[str, Any]:
    """The endpoint's valid body with `field` (and its password twin) set to `value`."""
    body: dict[str, Any] = {**VALID[path], field: value}
    if paired and field in PAIRED and PAIRED[field] in body:
        body[PAIRED[field]] = value
    return body


# -- bodies that are not a JSON object --------------------------------------------------------
@pytest.mark.parametrize("kind", list(NOT_AN_OBJECT))
@pytest.mark.parametrize("path", ENDPOINTS)
def test_body_that_is_not_a_json_object_is_400_detail(api: httpx.Client, alice: dict[str, Any],
                                                       path: str, kind: str) -> None:
    """API.md errors: malformed JSON, an array, string, number, null or true is 400 {detail}."""
    assert_detail(send_json_text(api, alice, path, NOT_AN_OBJECT[kind]), 400)


@pytest.mark.parametrize("body", [b'{"email": "\xff\xfe"}', b"\xff\xfe\xfd",
                                  b'{"email": "bob\xc0\xaf@example.com"}'],
                         ids=["in-string", "whole-body", "overlong-encoding"])
@pytest.mark.parametrize("path", ENDPOINTS)
def test_invalid_utf8_is_400_detail(api: httpx.Client, alice: dict[str, Any], path: str,
                                    body: bytes) -> None:
    """API.md errors: a body that is not valid UTF-8 JSON is unparseable, 400 {detail}."""
    assert_detail(send_json_text(api, alice, path, body), 400)


@pytest.mark.parametrize("body", [b"[" * 100_000, b"[" * 60_000, b'{"a":' * 13_000,
                                  b'{"a":[' * 10_000],
                         ids=["arrays-over-limit", "arrays", "objects", "mixed"])
@pytest.mark.parametrize("path", ENDPOINTS)
def test_deeply_nested_json_is_4xx_not_500(api: httpx.Client, alice: dict[str, Any], path: str,
                                           body: bytes) -> None:
    """API.md: bad input of any kind is a 4xx with a clear message, never a 500."""
    assert_detail(send_json_text(api, alice, path, body), 413 if len(body) > LIMIT else 400)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_huge_integer_literal_is_400_not_500(client: httpx.Client, caplog: pytest.LogCaptureFixture,
                                             path: str) -> None:
    """API.md: bad input of any kind (here a 5000-digit number) is a 4xx, never a 500."""
    field = next(iter(VALID[path]))
    body = b'{"' + field.encode() + b'": 1' + b"0" * 5000 + b"}"
    response = send_json_text(client, own_user(client, path), path, body)
    settle(client, caplog)
    assert response.status_code == 400, response.text
    assert isinstance(response.json(), dict) and response.json()


# -- field-level errors -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(WRONG_TYPES))
@pytest.mark.parametrize("path, field", FIELDS, ids=FIELD_IDS)
def test_wrong_type_is_400_on_that_field(api: httpx.Client, alice: dict[str, Any], path: str,
                                         field: str, kind: str) -> None:
    """API.md errors: a wrong type is invalid input, 400 {"<field>": [...]} on that field only."""
    body = with_field(path, field, WRONG_TYPES[kind], paired=False)
    assert_field_errors(send(api, alice, path, json=body), field)


@pytest.mark.parametrize("path, field", FIELDS, ids=FIELD_IDS)
def test_null_byte_in_a_string_is_400_on_that_field(api: httpx.Client, alice: dict[str, Any],
                                                    path: str, field: str) -> None:
    """API.md: null bytes are bad input, 400 on the field (OWASP ASVS 5.1.3 input validation)."""
    value = VALID[path][field]
    body = with_field(path, field, value[:2] + "\x00" + value[2:])
    assert_field_errors(send(api, alice, path, json=body), field, only=False)


@pytest.mark.parametrize("path, field", FIELDS, ids=FIELD_IDS)
def test_overlong_field_is_400_on_that_field(api: httpx.Client, alice: dict[str, Any], path: str,
                                             field: str) -> None:
    """API.md: overlong fields (username/display_name 150, password 1024, email 254) are 400."""
    body = with_field(path, field, OVERLONG[field])
    assert_field_errors(send(api, alice, path, json=body), field, only=False)


SURROGATE_CASES = [pytest.param(path, field, id=f"{path}{field}") for path, field in FIELDS]


@pytest.mark.parametrize("path, field", SURROGATE_CASES)
def test_lone_surrogate_escape_is_400_not_500(client: httpx.Client,
                                              caplog: pytest.LogCaptureFixture, path: str,
                                              field: str) -> None:
    r"""API.md: a "\ud800" escape (not encodable as UTF-8) is bad input, a 4xx, never a 500."""
    value = VALID[path][field]
    body = json.dumps(with_field(path, field, value + "\ud800")).encode()
    response = send_json_text(client, own_user(client, path), path, body)
    settle(client, caplog)
    assert 400 <= response.status_code < 500, response.text
    assert isinstance(response.json(), dict) and response.json()


def test_profile_patch_with_an_empty_body_is_400(api: httpx.Client,
                                                 alice: dict[str, Any]) -> None:
    """API.md: profile/ PATCH with an empty body (zero bytes) is a 400; `{}` answers 200."""
    assert_detail(send(api, alice, "profile/", content=b"", headers=JSON), 400)
    unchanged = send(api, alice, "profile/", json={})
    assert unchanged.status_code == 200 and unchanged.json()["username"] == "alice"


# -- body size ----------------------------------------------------------------------------------
def padded(body: dict[str, Any], size: int) -> bytes:
    """`body` plus an ignored `pad` field, exactly `size` bytes of JSON."""
    skeleton = json.dumps({**body, "pad": ""}).encode()
    raw = json.dumps({**body, "pad": "x" * (size - len(skeleton))}).encode()
    assert len(raw) == size
    return raw


def chunks(raw: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start:start + size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ENDPOINTS)
def test_body_over_64_kib_is_413(api: httpx.Client, alice: dict[str, Any], path: str,
                                 chunked: bool) -> None:
    """API.md errors: a body over the limit (default 64 KiB) is 413 {detail}, announced or not."""
    raw = padded(VALID[path], LIMIT + 1)
    response = send(api, alice, path, content=chunks(raw) if chunked else raw, headers=JSON)
    assert_detail(response, 413)
    # The server drops the body's rest and closes: a request sent after it would be lost.
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ENDPOINTS)
def test_body_at_the_limit_is_parsed(api: httpx.Client, alice: dict[str, Any], path: str,
                                     chunked: bool) -> None:
    """API.md: only a body *over* the limit is refused; one of exactly 64 KiB is parsed."""
    body = {**VALID[path], "display_name": "Padded"} if path == "profile/" else VALID[path]
    if path == "register/":
        name = "u" + uuid.uuid4().hex[:12]
        body = {**body, "username": name, "email": f"{name}@example.com"}
    raw = padded(body, LIMIT)
    response = send(api, alice, path, content=chunks(raw) if chunked else raw, headers=JSON)
    expected = {"register/": (201, "access"), "login/": (200, "access"),
                "logout/": (400, "refresh_token"), "password-reset/": (200, "message"),
                "password-reset/confirm/": (400, "token"), "token/refresh/": (401, "code"),
                "profile/": (200, "display_name")}[path]
    assert response.status_code == expected[0], response.text
    assert expected[1] in response.json()


def test_smaller_configured_max_body_bytes_is_honoured(settings: Settings,
                                                       make_client: Any) -> None:
    """API.md [server] max_body_bytes: a configured 2048-byte limit refuses 2049 bytes."""
    client = make_client(settings.replace(server={"max_body_bytes": 2048}))
    body = {"username_or_email": "alice", "password": PASSWORD}
    for content in (padded(body, 2049), chunks(padded(body, 2049), 512)):
        assert_detail(client.post(API + "login/", content=content, headers=JSON), 413)
    for content in (padded(body, 2048), chunks(padded(body, 2048), 512)):
        response = client.post(API + "login/", content=content, headers=JSON)
        assert response.status_code == 401 and response.json()["code"] == "no_active_account"


# -- media type, method, path -------------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
@pytest.mark.parametrize("path", ENDPOINTS)
def test_body_that_is_not_json_media_type_is_415(api: httpx.Client, alice: dict[str, Any],
                                                 path: str, content_type: str | None) -> None:
    """API.md errors: a body that is not JSON (text/plain, form-encoded, none) is 415 {detail}."""
    if content_type == "application/x-www-form-urlencoded":
        raw = "&".join(f"{k}={v}" for k, v in VALID[path].items()).encode()
    else:
        raw = json.dumps(VALID[path]).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    assert_detail(send(api, alice, path, content=raw, headers=headers), 415)


WRONG_METHODS = [(path, method) for path in ENDPOINTS if path != "profile/"
                 for method in ("GET", "PUT", "DELETE")]
WRONG_METHODS += [("profile/", method) for method in ("POST", "PUT")]


@pytest.mark.parametrize("slash", ["/", ""], ids=["slash", "no-slash"])
@pytest.mark.parametrize("path, method", WRONG_METHODS)
def test_wrong_method_is_405_detail(api: httpx.Client, alice: dict[str, Any], path: str,
                                    method: str, slash: str) -> None:
    """API.md errors: a wrong method is 405 {detail}."""
    response = send(api, alice, path.rstrip("/") + slash, method=method, json=VALID[path])
    assert_detail(response, 405)


def test_405_names_the_allowed_methods(api: httpx.Client, alice: dict[str, Any]) -> None:
    """RFC 9110 15.5.6: a 405 response MUST carry an Allow header listing the allowed methods."""
    response = send(api, alice, "profile/", method="PUT")
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers.get("allow", "").split(",")}
    assert {"GET", "PATCH", "DELETE"} <= allowed


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("path", ["/api/v1/auth/nope/", "/api/v1/auth/", "/api/v1/",
                                  "/api/v1/auth/register/extra/", "/api/v2/auth/login/",
                                  "/api/v1/auth/LOGIN/", "/api/v1/auth/login/%00/"])
def test_unknown_path_is_404_not_found(api: httpx.Client, path: str, method: str) -> None:
    """API.md errors: an unknown resource is 404 {"detail": "Not found."} (`/` redirects to
    the docs page: test_openapi)."""
    response = api.request(method, path, json={})
    assert response.status_code == 404, response.text
    assert response.json() == {"detail": "Not found."}


SERVED = [(path, "POST") for path in ENDPOINTS if path != "profile/"]
SERVED += [("profile/", "GET"), ("profile/", "PATCH")]


@pytest.mark.parametrize("path, method", SERVED)
def test_path_without_trailing_slash_is_served_the_same(api: httpx.Client,
                                                        alice: dict[str, Any], path: str,
                                                        method: str) -> None:
    """API.md: a request without the trailing slash is redirected or served the same, never 404."""
    kwargs: dict[str, Any] = {} if method == "GET" else {"json": {}}
    with_slash = send(api, alice, path, method=method, **kwargs)
    without = send(api, alice, path.rstrip("/"), method=method, follow_redirects=True, **kwargs)
    assert with_slash.status_code != 404 and without.status_code != 404
    assert (without.status_code, without.json()) == (with_slash.status_code, with_slash.json())


def test_register_with_valid_body_still_works(api: httpx.Client) -> None:
    """Control for this module: the well-formed bodies used above are accepted as such."""
    name = "ctl" + uuid.uuid4().hex[:8]
    created = api.post(API + "register/", json={**VALID["register/"], "username": name,
                                                "email": f"{name}@example.com"})
    assert created.status_code == 201, created.text
    signed_in = login(api, name)
    assert signed_in.status_code == 200 and set(signed_in.json()) >= {"access", "refresh", "user"}


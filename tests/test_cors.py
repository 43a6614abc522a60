"""CORS from an explicit allow-list in [cors]: off by default, never `*` with credentials,
never an unlisted origin echoed back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from api import API, USER, bearer, register

from service.config import ConfigError, CorsSettings, Settings, load_settings

APP = "https://app.example.com"
SECURITY = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
            "content-security-policy": "default-src 'none'; frame-ancestors 'none'"}


def preflight(client: httpx.Client, origin: str, method: str = "POST",
              headers: str = "content-type") -> httpx.Response:
    return client.options(API + "login/", headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers})


def cors_client(settings: Settings, make_client: Any, **cors: Any) -> httpx.Client:
    return make_client(settings.replace(cors=CorsSettings(**cors)))  # type: ignore[no-any-return]


def test_cors_is_off_by_default(client: httpx.Client) -> None:
    """OWASP ASVS 14.5.3: with no allow-list, no origin is ever allowed."""
    assert preflight(client, APP).status_code == 405
    answer = client.post(API + "register/", json=USER, headers={"Origin": APP})
    assert answer.status_code == 201
    assert not [h for h in answer.headers if h.startswith("access-control-")]


def test_listed_origin_gets_the_configured_preflight(settings: Settings,
                                                    make_client: Any) -> None:
    """A listed origin may send Authorization and JSON with the API's methods; the preflight
    answer says so, for max_age seconds, and carries the security headers (ASVS 14.5.3)."""
    client = cors_client(settings, make_client, allow_origins=(APP,), max_age=120)
    answer = preflight(client, APP, "PATCH", "authorization, content-type")
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP
    methods = {m.strip() for m in answer.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST", "PATCH", "DELETE", "OPTIONS"}
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert answer.headers["access-control-max-age"] == "120"
    assert "access-control-allow-credentials" not in answer.headers
    assert "origin" in answer.headers["vary"].lower()
    for name, value in SECURITY.items():
        assert answer.headers[name] == value
    assert preflight(client, APP, "PUT").status_code == 400
    assert preflight(client, APP, "POST", "x-custom").status_code == 400


def test_listed_origin_can_read_answers_and_retry_after(settings: Settings,
                                                        make_client: Any) -> None:
    """The actual answers name the origin, vary on it, and expose Retry-After."""
    client = cors_client(settings, make_client, allow_origins=("http://localhost:3000", APP))
    alice = register(client)
    answer = client.get(API + "profile/", headers={**bearer(alice["access"]), "Origin": APP})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP
    assert answer.headers["access-control-expose-headers"] == "Retry-After"
    assert "origin" in answer.headers["vary"].lower()
    error = client.get(API + "profile/", headers={"Origin": APP})
    assert error.status_code == 401 and error.headers["access-control-allow-origin"] == APP


@pytest.mark.parametrize("origin", [
    "https://evil.example.com",
    "https://app.example.com.evil.com",      # listed origin as a prefix
    "https://evilapp.example.com",           # listed origin as a suffix
    "http://app.example.com",                # another scheme
    "https://app.example.com:8443",          # another port
    "null",                                  # sandboxed iframes, file:// pages
])
def test_unlisted_origin_is_never_echoed(settings: Settings, make_client: Any,
                                         origin: str) -> None:
    """OWASP ASVS 14.5.3: exact matches only; no prefix, suffix or `null` origin is allowed,
    on the preflight or on the answer itself."""
    client = cors_client(settings, make_client, allow_origins=(APP,), allow_credentials=True)
    answer = preflight(client, origin)
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers
    answer = client.post(API + "register/", json=USER, headers={"Origin": origin})
    assert answer.status_code == 201
    assert "access-control-allow-origin" not in answer.headers


def test_credentials_name_the_origin_never_a_wildcard(settings: Settings,
                                                      make_client: Any) -> None:
    """With allow_credentials the listed origin is named and credentials allowed."""
    client = cors_client(settings, make_client, allow_origins=(APP,), allow_credentials=True)
    answer = preflight(client, APP)
    assert answer.headers["access-control-allow-origin"] == APP
    assert answer.headers["access-control-allow-credentials"] == "true"
    answer = client.post(API + "register/", json=USER, headers={"Origin": APP})
    assert answer.headers["access-control-allow-origin"] == APP
    assert answer.headers["access-control-allow-credentials"] == "true"


# -- configuration ----------------------------------------------------------------------------
def test_defaults_and_the_environment() -> None:
    """Defaults: no origin, no credentials, 600 s; the environment takes a comma list."""
    assert CorsSettings() == CorsSettings(allow_origins=(), allow_credentials=False, max_age=600)
    s = load_settings(path=None, env={"AUTH_CORS_ALLOW_ORIGINS": f"{APP}, http://localhost:3000",
                                      "AUTH_CORS_ALLOW_CREDENTIALS": "true",
                                      "AUTH_CORS_MAX_AGE": "60"})
    assert s.cors == CorsSettings((APP, "http://localhost:3000"), True, 60)


def test_shipped_config_toml_has_the_cors_defaults() -> None:
    root = Path(__file__).resolve().parent.parent
    assert load_settings(root / "config.toml", env={}).cors == CorsSettings()


def test_wildcard_with_credentials_is_refused_naming_the_key() -> None:
    """OWASP ASVS 14.5.3 / CORS cheat sheet: `*` with credentials would let any site read
    a signed-in user's answers; startup fails naming the key."""
    with pytest.raises(ConfigError, match=r"\[cors\] allow_credentials"):
        load_settings(path=None, env={"AUTH_CORS_ALLOW_ORIGINS": "*",
                                      "AUTH_CORS_ALLOW_CREDENTIALS": "true"})
    assert load_settings(path=None, env={"AUTH_CORS_ALLOW_ORIGINS": "*"}).cors.allow_origins \
        == ("*",)


@pytest.mark.parametrize("origin", [
    "https://app.example.com/", "https://app.example.com/login", "app.example.com",
    "https://App.Example.com", "null", "https://user@app.example.com", "https://a.com:0",
    "https://a.com:65536", "https://a.com?x=1", "https://*.example.com",
])
def test_origin_must_be_scheme_host_port(origin: str) -> None:
    """An origin a browser would never send is a typo that silently breaks CORS: refused,
    naming the key."""
    with pytest.raises(ConfigError, match=r"\[cors\] allow_origins"):
        load_settings(path=None, env={"AUTH_CORS_ALLOW_ORIGINS": origin})


@pytest.mark.parametrize("origin", [APP, "http://localhost:3000", "http://127.0.0.1:8080",
                                    "http://[::1]:5173", "capacitor://localhost"])
def test_well_formed_origins_are_accepted(origin: str) -> None:
    assert load_settings(path=None, env={"AUTH_CORS_ALLOW_ORIGINS": origin}).cors.allow_origins \
        == (origin,)

"""[rate_limit]: per client IP and, separately, per submitted identifier; 429 + Retry-After."""

from __future__ import annotations

from typing import Any

import httpx
from support import USER, register

from service.config import Rate, Settings

API = "/api/v1/auth/"


def limited(settings: Settings, **rates: Rate) -> Settings:
    return settings.replace(rate_limit={"enabled": True, **rates},
                            server={"trusted_proxies": ("127.0.0.1",)})


def login(client: httpx.Client, who: str, ip: str) -> httpx.Response:
    return client.post(API + "login/", json={"username_or_email": who, "password": "wrong pass"},
                       headers={"X-Forwarded-For": ip})


def test_login_is_limited_per_identifier_across_ips(settings: Settings, make_client: Any) -> None:
    """API.md [rate_limit]: the per-identifier limit holds whatever IP the attempts come from."""
    client = make_client(limited(settings, login=Rate(3, 60)))
    codes = [login(client, "alice", f"10.0.0.{i}").status_code for i in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    other = login(client, "bob", "10.0.0.99")
    assert other.status_code == 401


def test_login_is_limited_per_ip_across_identifiers(settings: Settings, make_client: Any) -> None:
    """API.md [rate_limit]: the per-IP limit holds whatever identifiers one client tries."""
    client = make_client(limited(settings, login=Rate(3, 60)))
    codes = [login(client, f"user{i}", "10.1.1.1").status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert login(client, "user9", "10.1.1.2").status_code == 401


def test_429_has_retry_after_and_a_json_body(settings: Settings, make_client: Any) -> None:
    """API.md errors: 429 {"detail"} plus Retry-After in seconds, within the window."""
    client = make_client(limited(settings, login=Rate(1, 60)))
    login(client, "alice", "10.2.0.1")
    refused = login(client, "alice", "10.2.0.1")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert set(refused.json()) == {"detail"}


def test_untrusted_peer_cannot_pick_its_ip(settings: Settings, make_client: Any) -> None:
    """X-Forwarded-For counts only when the peer is a trusted proxy."""
    rate_only = settings.replace(rate_limit={"enabled": True, "login": Rate(2, 60)})
    client = make_client(rate_only)
    codes = [login(client, f"u{i}", f"10.3.0.{i}").status_code for i in range(3)]
    assert codes == [401, 401, 429]


def test_register_and_reset_are_limited(settings: Settings, make_client: Any) -> None:
    """API.md [rate_limit] register and password_reset."""
    client = make_client(limited(settings, register=Rate(1, 3600), password_reset=Rate(2, 3600)))
    register(client)
    second = client.post(API + "register/", json={**USER, "username": "bob", "email": "b@x.org"})
    assert second.status_code == 429
    resets = [client.post(API + "password-reset/", json={"email": "alice@example.com"},
                          headers={"X-Forwarded-For": f"10.4.0.{i}"}).status_code
              for i in range(3)]
    assert resets == [200, 200, 429]


def test_limit_keys_expire_with_their_window(settings: Settings, make_client: Any,
                                            sync_redis: Any) -> None:
    """Redis conventions: every key has a TTL equal to the life of what it guards."""
    client = make_client(limited(settings, login=Rate(5, 60)))
    login(client, "alice", "10.5.0.1")
    keys = list(sync_redis.scan_iter(match=f"{settings.redis.prefix}rl:*"))
    assert len(keys) == 2
    assert all(0 < sync_redis.ttl(k) <= 60 for k in keys)


def test_disabled_limits_never_refuse(settings: Settings, client: httpx.Client) -> None:
    """[rate_limit] enabled = false switches every limit off."""
    assert all(login(client, "alice", "10.6.0.1").status_code == 401 for _ in range(15))

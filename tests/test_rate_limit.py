"""[rate_limit]: per client IP and, separately, per submitted identifier; 429 + Retry-After."""

from __future__ import annotations

from typing import Any

import httpx
from api import API, USER, login, register

from service.config import Rate, Settings
from service.store.keys import RedisKeys


def limited(settings: Settings, **rates: Rate) -> Settings:
    return settings.replace(rate_limit={"enabled": True, **rates},
                            server={"trusted_proxies": ("127.0.0.1",)})


def guess(client: httpx.Client, who: str, ip: str) -> httpx.Response:
    """A wrong password for `who`, from `ip` (behind the trusted proxy)."""
    return login(client, who, "wrong pass", headers={"X-Forwarded-For": ip})


def test_login_is_limited_per_identifier_across_ips(settings: Settings, make_client: Any) -> None:
    """API.md [rate_limit]: the per-identifier limit holds whatever IP the attempts come from."""
    client = make_client(limited(settings, login=Rate(3, 60)))
    codes = [guess(client, "alice", f"10.0.0.{i}").status_code for i in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    other = guess(client, "bob", "10.0.0.99")
    assert other.status_code == 401


def test_login_is_limited_per_ip_across_identifiers(settings: Settings, make_client: Any) -> None:
    """API.md [rate_limit]: the per-IP limit holds whatever identifiers one client tries."""
    client = make_client(limited(settings, login=Rate(3, 60)))
    codes = [guess(client, f"user{i}", "10.1.1.1").status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert guess(client, "user9", "10.1.1.2").status_code == 401


def test_429_has_retry_after_and_a_json_body(settings: Settings, make_client: Any) -> None:
    """API.md errors: 429 {"detail"} plus Retry-After in seconds, within the window."""
    client = make_client(limited(settings, login=Rate(1, 60)))
    guess(client, "alice", "10.2.0.1")
    refused = guess(client, "alice", "10.2.0.1")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert set(refused.json()) == {"detail"}


def test_untrusted_peer_cannot_pick_its_ip(settings: Settings, make_client: Any) -> None:
    """X-Forwarded-For counts only when the peer is a trusted proxy."""
    rate_only = settings.replace(rate_limit={"enabled": True, "login": Rate(2, 60)})
    client = make_client(rate_only)
    codes = [guess(client, f"u{i}", f"10.3.0.{i}").status_code for i in range(3)]
    assert codes == [401, 401, 429]


def test_register_and_reset_are_limited(settings: Settings, make_client: Any) -> None:
    """API.md [rate_limit] register and password_reset (per client IP; one address is
    protected by the mail cap instead, see test_password_reset)."""
    client = make_client(limited(settings, register=Rate(1, 3600), password_reset=Rate(2, 3600)))
    register(client)
    second = client.post(API + "register/", json={**USER, "username": "bob", "email": "b@x.org"})
    assert second.status_code == 429
    resets = [client.post(API + "password-reset/", json={"email": f"u{i}@example.com"},
                          headers={"X-Forwarded-For": "10.4.0.1"}).status_code
              for i in range(3)]
    assert resets == [200, 200, 429]


def test_limit_keys_expire_with_their_window(settings: Settings, make_client: Any,
                                            sync_redis: Any) -> None:
    """Redis conventions: every key has a TTL equal to the life of what it guards."""
    client = make_client(limited(settings, login=Rate(5, 60)))
    guess(client, "alice", "10.5.0.1")
    keys = list(sync_redis.scan_iter(match=RedisKeys(settings.redis.prefix).every("rl")))
    assert len(keys) == 2
    assert all(0 < sync_redis.ttl(k) <= 60 for k in keys)


def test_disabled_limits_never_refuse(settings: Settings, client: httpx.Client) -> None:
    """[rate_limit] enabled = false switches every limit off."""
    assert all(guess(client, "alice", "10.6.0.1").status_code == 401 for _ in range(15))


def sign_in(client: httpx.Client, who: str, ip: str, device: str | None = None,
            password: str = USER["password"]) -> httpx.Response:
    return login(client, who, password, device=device, headers={"X-Forwarded-For": ip})


def test_someone_elses_guesses_never_lock_the_owners_device_out(settings: Settings,
                                                                make_client: Any) -> None:
    """Issue 9 (1): from one IP, 11 wrong logins by username and 11 by email made the owner's
    right login from another IP a 429, even with a valid device token (README: an attacker
    cannot lock the owner out of a device they have used before). Defaults otherwise."""
    defaults = Settings()
    client = make_client(limited(settings, login=defaults.rate_limit.login)
                         .replace(lockout={"enabled": True}))
    register(client)
    device = sign_in(client, "alice", "10.7.0.1").json()["device_token"]
    for who in ["alice"] * 11 + ["alice@example.com"] * 11:
        assert guess(client, who, "10.7.0.66").status_code in (401, 429)
    for who in ("alice", "alice@example.com"):
        assert sign_in(client, who, "10.7.0.2", device=device).status_code == 200


def test_a_client_over_its_ip_limit_spends_no_identifiers_budget(settings: Settings,
                                                                 make_client: Any) -> None:
    """Issue 9 (1): requests refused for their IP do not also count against the identifier
    they name, so one client's flood cannot use up the owner's allowance."""
    client = make_client(limited(settings, login=Rate(3, 60)))
    register(client)
    assert [guess(client, "nobody", "10.8.0.1").status_code for _ in range(3)] == [401] * 3
    assert [guess(client, who, "10.8.0.1").status_code
            for who in ["alice", "alice@example.com"] * 4] == [429] * 8
    assert sign_in(client, "alice", "10.8.0.2").status_code == 200
    assert sign_in(client, "alice@example.com", "10.8.0.3").status_code == 200


def test_a_known_device_has_a_rate_budget_of_its_own(settings: Settings,
                                                     make_client: Any) -> None:
    """The per-identifier limit does not apply to a client with a valid device token for the
    account; the device is limited on its own, and a token of another account counts for
    nothing."""
    client = make_client(limited(settings, login=Rate(3, 60)))
    register(client)
    register(client, username="bob", email="bob@example.com")
    device = sign_in(client, "alice", "10.9.0.1").json()["device_token"]
    bobs = sign_in(client, "bob", "10.9.0.1").json()["device_token"]
    assert [guess(client, "alice", f"10.9.1.{i}").status_code for i in range(3)] \
        == [401, 401, 429]
    assert sign_in(client, "alice", "10.9.2.1", device=bobs).status_code == 429
    assert [sign_in(client, "alice", f"10.9.3.{i}", device=device).status_code
            for i in range(4)] == [200, 200, 200, 429]


def test_one_ipv6_host_is_one_client_however_spelt(settings: Settings,
                                                   make_client: Any) -> None:
    """Issue 9 (11): each spelling of one IPv6 address, and each address of one /64, had a
    counter of its own; IPv6 is limited per /64, an IPv4-mapped address as its IPv4."""
    client = make_client(limited(settings, login=Rate(3, 60)))
    spellings = ["2001:db8:0:7::1", "2001:0DB8:0000:0007:0000:0000:0000:0001",
                 "[2001:db8:0:7::1]:443", "2001:db8:0:7:ffff::2", "2001:db8:0:7::1%eth0"]
    codes = [guess(client, f"user{i}", ip).status_code for i, ip in enumerate(spellings)]
    assert codes == [401, 401, 401, 429, 429]
    assert guess(client, "user9", "2001:db8:0:8::1").status_code == 401  # another /64
    mapped = [guess(client, f"v4user{i}", ip).status_code
              for i, ip in enumerate(["10.10.0.1", "::ffff:10.10.0.1", "::FFFF:a0a:1",
                                      "10.10.0.1:8080"])]
    assert mapped == [401, 401, 401, 429]


def test_forwarded_hops_that_are_not_addresses_are_no_clients(settings: Settings,
                                                              make_client: Any) -> None:
    """Issue 9 (11): an X-Forwarded-For hop that is not an address (`unknown`, garbage) got a
    counter of its own, so a client could pick a fresh one per request. Such a hop is never
    the client: what lies left of it is unverifiable, so the nearest trusted hop is."""
    client = make_client(limited(settings, login=Rate(3, 60)))
    junk = ["garbage-1", "unknown", "1.2.3.4.5", "[::1", "10.11.0.1, junk-2", "::g"]
    codes = [guess(client, f"user{i}", hop).status_code for i, hop in enumerate(junk)]
    assert codes == [401, 401, 401, 429, 429, 429]


def test_client_keys_are_canonical() -> None:
    """limits.client_key: one key per IPv4 address and per IPv6 /64, whatever the spelling."""
    from service.core.limits import client_key
    from service.http.web import parse_ip

    assert client_key("::ffff:192.0.2.1") == client_key("192.0.2.1") == "ip:192.0.2.1"
    assert client_key("2001:DB8::1") == client_key("2001:db8::ffff:1") == "ip:2001:db8::/64"
    assert client_key("2001:db8:0:1::1") != client_key("2001:db8::1")
    assert client_key("unknown") == "ip:unknown"
    assert parse_ip(" [2001:db8::1]:80 ") == parse_ip("2001:0db8::1")
    assert parse_ip("1.2.3.4:x") is None and parse_ip("[::1]x") is None


def test_every_forwarded_for_field_is_read(settings: Settings, make_client: Any) -> None:
    """A proxy that adds its own X-Forwarded-For field after the client's: the hops are one
    list in order, so the client's own field never picks its counter."""
    client = make_client(limited(settings, login=Rate(2, 60)))
    codes = []
    for i in range(3):
        headers = [("X-Forwarded-For", f"10.12.0.{i}"), ("X-Forwarded-For", "10.12.1.1")]
        codes.append(login(client, f"u{i}", "x", headers=headers).status_code)
    assert codes == [401, 401, 429]

"""config.py: defaults < file < environment, typed, and a bad value names its key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from service.config import ConfigError, Rate, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_match_api_md() -> None:
    s = Settings()
    assert (s.server.host, s.server.port, s.server.max_body_bytes) == ("127.0.0.1", 8000, 65536)
    assert s.database.url == "sqlite:///./data/auth.db"
    assert (s.redis.url, s.redis.prefix) == ("embedded", "auth:")
    jwt = s.jwt
    assert (jwt.algorithm, jwt.access_ttl, jwt.refresh_ttl) == ("HS256", 3600, 86400)
    assert jwt.leeway == 10
    assert s.jwt.rotate_refresh_tokens is False
    assert (s.auth.default_role, s.auth.self_register_roles) == ("user", ("user",))
    p = s.passwords
    assert (p.min_length, p.max_length, p.time_cost, p.memory_cost, p.parallelism) == (
        8, 1024, 2, 19456, 1)
    assert s.password_reset.ttl == 3600
    assert s.password_reset.url_template == "http://localhost:8000/reset-password?token={token}"
    assert (s.smtp.host, s.smtp.port, s.smtp.starttls) == ("127.0.0.1", 1025, False)


def test_shipped_config_toml_loads_and_equals_the_defaults(tmp_path: Path) -> None:
    loaded = load_settings(ROOT / "config.toml", env={})
    defaults = Settings()
    for section in ("server", "database", "redis", "jwt", "auth", "rate_limit",
                    "password_reset", "smtp", "worker"):
        assert getattr(loaded, section) == getattr(defaults, section), section


def test_shipped_config_toml_names_every_key() -> None:
    text = (ROOT / "config.toml").read_text()
    for section in dataclasses.fields(Settings):
        if section.name == "data_dir":
            continue
        assert f"[{section.name}]" in text
        for key in dataclasses.fields(getattr(Settings(), section.name)):
            assert f"{key.name} =" in text, f"[{section.name}] {key.name} missing"


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[smtp]\nport = 2525\n[rate_limit]\nlogin = "3/second"\n'
                    '[auth]\nself_register_roles = ["user", "viewer"]\n')
    s = load_settings(path, env={})
    assert s.smtp.port == 2525 and s.rate_limit.login == Rate(3, 1)
    assert s.auth.self_register_roles == ("user", "viewer")
    env = {"AUTH_SMTP_PORT": "2626", "AUTH_RATE_LIMIT_LOGIN": "7/hour",
           "AUTH_PASSWORD_RESET_TTL": "600", "AUTH_AUTH_SELF_REGISTER_ROLES": "user,reader",
           "AUTH_JWT_ROTATE_REFRESH_TOKENS": "1", "AUTH_SMTP_STARTTLS": "true"}
    s = load_settings(path, env=env)
    assert s.smtp.port == 2626 and s.rate_limit.login == Rate(7, 3600)
    assert s.password_reset.ttl == 600 and s.auth.self_register_roles == ("user", "reader")
    assert s.jwt.rotate_refresh_tokens is True and s.smtp.starttls is True


def test_auth_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text("[server]\nport = 9001\n")
    assert load_settings(env={"AUTH_CONFIG": str(path)}).server.port == 9001


@pytest.mark.parametrize("env, key", [
    ({"AUTH_SMTP_PORT": "abc"}, "AUTH_SMTP_PORT"),
    ({"AUTH_SERVER_PORT": "70000"}, "[server] port"),
    ({"AUTH_JWT_SECRET": "short"}, "[jwt] secret"),
    ({"AUTH_JWT_ALGORITHM": "none"}, "[jwt] algorithm"),
    ({"AUTH_RATE_LIMIT_LOGIN": "lots"}, "AUTH_RATE_LIMIT_LOGIN"),
    ({"AUTH_JWT_ROTATE_REFRESH_TOKENS": "maybe"}, "AUTH_JWT_ROTATE_REFRESH_TOKENS"),
    ({"AUTH_AUTH_SELF_REGISTER_ROLES": "user,admin"}, "[auth] self_register_roles"),
    ({"AUTH_PASSWORD_RESET_URL_TEMPLATE": "http://x/"}, "[password_reset] url_template"),
    ({"AUTH_DATABASE_URL": "mysql://x"}, "[database] url"),
    ({"AUTH_REDIS_URL": "memcached://x"}, "[redis] url"),
])
def test_bad_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(path=None, env=env)
    assert key in str(info.value)


def test_unknown_keys_and_sections_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[smtp]\nprot = 25\n")
    with pytest.raises(ConfigError, match=r"\[smtp\] prot"):
        load_settings(path, env={})
    path.write_text("[smpt]\nport = 25\n")
    with pytest.raises(ConfigError, match=r"\[smpt\]"):
        load_settings(path, env={})


def test_broken_toml_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match=r"c\.toml"):
        load_settings(path, env={})


def test_wrong_type_in_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[jwt]\naccess_ttl = "soon"\n')
    with pytest.raises(ConfigError, match=r"\[jwt\] access_ttl"):
        load_settings(path, env={})


def test_roles_are_a_known_set(tmp_path: Path) -> None:
    """admin, the self-registrable roles and [auth] extra_roles; a blank or overlong role in
    either list is refused naming its key."""
    assert Settings().auth.known_roles() == ("admin", "user")
    s = load_settings(env={"AUTH_AUTH_EXTRA_ROLES": "editor,user",
                           "AUTH_AUTH_SELF_REGISTER_ROLES": "user,viewer"})
    assert s.auth.known_roles() == ("admin", "user", "viewer", "editor")
    with pytest.raises(ConfigError, match=r"\[auth\] extra_roles"):
        load_settings(env={"AUTH_AUTH_EXTRA_ROLES": "e" * 65})
    path = tmp_path / "c.toml"
    path.write_text('[auth]\nself_register_roles = ["user", " viewer"]\n')
    with pytest.raises(ConfigError, match=r"\[auth\] self_register_roles"):
        load_settings(path, env={})


def test_log_level_is_a_key_in_any_case() -> None:
    assert load_settings(env={"AUTH_LOG_LEVEL": "debug"}).log.level == "debug"
    with pytest.raises(ConfigError, match=r"\[log\] level"):
        load_settings(env={"AUTH_LOG_LEVEL": "chatty"})


def test_unknown_auth_variables_are_named_with_the_closest_key() -> None:
    from service.config import unknown_env_warnings

    lines = unknown_env_warnings({"AUTH_SERVER_PROT": "1", "AUTH_CONFIG": "x",
                                  "AUTH_DATA_DIR": "d", "AUTH_TEST_REDIS_URL": "r",
                                  "AUTH_SMTP_PORT": "25", "AUTH_LOG_LEVEL": "info",
                                  "AUTH_ZZZZZZZZZZZZ": "1", "HOME": "/"})
    assert lines == ["AUTH_SERVER_PROT is not a setting (did you mean AUTH_SERVER_PORT?): "
                     "ignored", "AUTH_ZZZZZZZZZZZZ is not a setting: ignored"]


def test_auth_data_dir_moves_the_default_sqlite_file(tmp_path: Path) -> None:
    data = tmp_path / "d"
    for path in (None, ROOT / "config.toml"):
        s = load_settings(path, env={"AUTH_DATA_DIR": str(data)})
        assert s.data_dir == data and s.database.url == f"sqlite:///{data / 'auth.db'}"
    explicit = load_settings(env={"AUTH_DATA_DIR": str(data),
                                  "AUTH_DATABASE_URL": "sqlite:///x.db"})
    assert explicit.database.url == "sqlite:///x.db"
    assert load_settings(env={}).database.url == "sqlite:///./data/auth.db"

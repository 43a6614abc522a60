"""Settings: one frozen, typed object built once at the edge.

Precedence: defaults < config.toml < AUTH_<SECTION>_<KEY> environment variables.
Any bad value raises ConfigError naming the key, so startup fails with one clear line.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

RATE_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ADMIN_ROLE = "admin"
# AUTH_* environment variables that are not AUTH_<SECTION>_<KEY> settings.
NON_KEY_ENV = ("AUTH_CONFIG", "AUTH_DATA_DIR")
NON_KEY_ENV_PREFIXES = ("AUTH_TEST_",)
SUPPORTED_JWT_ALGORITHMS = ("HS256", "HS384", "HS512")


class ConfigError(Exception):
    """A setting is missing, malformed or out of range; the message names the key."""


@dataclass(frozen=True)
class Rate:
    """`N/period`: at most `limit` events per `window` seconds."""

    limit: int
    window: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(second|minute|hour|day)\s*", text)
        if not match or int(match.group(1)) < 1:
            raise ValueError("expected N/second|minute|hour|day with N >= 1")
        return cls(int(match.group(1)), RATE_PERIODS[match.group(2)])

    def __str__(self) -> str:
        period = {v: k for k, v in RATE_PERIODS.items()}[self.window]
        return f"{self.limit}/{period}"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 65536
    trusted_proxies: tuple[str, ...] = ()
    max_header_bytes: int = 16384
    header_timeout: float = 5.0
    body_timeout: float = 15.0
    send_timeout: float = 15.0
    max_connections: int = 1000


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///./data/auth.db"
    timeout: int = 10


@dataclass(frozen=True)
class RedisSettings:
    url: str = "embedded"
    prefix: str = "auth:"
    socket_timeout: float = 5.0


@dataclass(frozen=True)
class JwtSettings:
    secret: str = ""
    algorithm: str = "HS256"
    access_ttl: int = 3600
    refresh_ttl: int = 86400
    issuer: str = ""
    audience: str = ""
    leeway: int = 10
    rotate_refresh_tokens: bool = False
    rotation_grace: int = 10


@dataclass(frozen=True)
class AuthSettings:
    default_role: str = "user"
    self_register_roles: tuple[str, ...] = ("user",)
    verify_emails: bool = True
    require_email_verification: bool = False
    email_verification_ttl: int = 2 * 86400
    verify_url_template: str = "http://localhost:8000/verify-email?token={token}"
    # Roles only an admin (or `authsvc create-user`) gives; see known_roles().
    extra_roles: tuple[str, ...] = ()

    def known_roles(self) -> tuple[str, ...]:
        """Every role a user may hold: admin, the self-registrable ones and extra_roles."""
        return tuple(dict.fromkeys((ADMIN_ROLE, *self.self_register_roles, *self.extra_roles)))


@dataclass(frozen=True)
class PasswordSettings:
    min_length: int = 8
    max_length: int = 1024
    time_cost: int = 2
    memory_cost: int = 19456
    parallelism: int = 1
    # The cores this process may run on (taskset, cgroups), not the machine's: two memory-hard
    # hashes time-sliced on one core thrash its cache and lose throughput.
    max_concurrent_hashes: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))


@dataclass(frozen=True)
class RateLimitSettings:
    enabled: bool = True
    login: Rate = Rate(10, 60)
    register: Rate = Rate(10, 3600)
    password_reset: Rate = Rate(5, 3600)


@dataclass(frozen=True)
class PasswordResetSettings:
    ttl: int = 3600
    max_mails_per_hour: int = 3
    url_template: str = "http://localhost:8000/reset-password?token={token}"


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 1025
    username: str = ""
    password: str = ""
    starttls: bool = False
    from_address: str = "authsvc <no-reply@localhost>"
    timeout: int = 10


@dataclass(frozen=True)
class WorkerSettings:
    queue: str = ""  # empty: derived from [redis] prefix, see mail.queue_name
    retry_intervals: tuple[int, ...] = (10, 60, 300)
    result_ttl: int = 60


@dataclass(frozen=True)
class CorsSettings:
    allow_origins: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int = 600


@dataclass(frozen=True)
class LockoutSettings:
    enabled: bool = True
    max_failures: int = 5
    window: int = 900
    device_ttl: int = 90 * 86400


@dataclass(frozen=True)
class AlertSettings:
    enabled: bool = True
    url_template: str = "http://localhost:8000/not-me?token={token}"
    link_ttl: int = 7 * 86400


@dataclass(frozen=True)
class UiSettings:
    # The hosted pages under /auth/ (sign in, sign up, reset, profile, sessions, ...).
    enabled: bool = False


@dataclass(frozen=True)
class MigrationSettings:
    """The cut-over from a Django REST Framework + simplejwt service (README, "Moving in from
    Django"): its tokens are accepted until `accept_until` (RFC 3339, UTC)."""

    simplejwt_signing_key: str = ""
    simplejwt_algorithm: str = "HS256"
    simplejwt_issuer: str = ""
    simplejwt_audience: str = ""
    simplejwt_user_id_claim: str = "user_id"
    accept_until: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.simplejwt_signing_key)

    def accept_until_epoch(self) -> float:
        """`accept_until` as a Unix time (0: no window)."""
        if not self.accept_until:
            return 0.0
        return parse_utc(self.accept_until).timestamp()


def parse_utc(text: str) -> datetime.datetime:
    """An RFC 3339 time with its offset (`Z` or `+00:00`); ValueError otherwise."""
    moment = datetime.datetime.fromisoformat(text.strip().replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError("needs an offset (Z for UTC)")
    return moment.astimezone(datetime.UTC)


@dataclass(frozen=True)
class MfaSettings:
    """A second factor (README, "Two-factor sign-in"): TOTP authenticators and recovery codes."""

    # Seals TOTP secrets in the database and keys the recovery codes' hashes; empty: one is
    # generated into the data directory, as the JWT secret is.
    encryption_key: str = ""
    issuer: str = "authsvc"  # the name authenticator apps show beside the account
    # Sensitive operations want a sign-in or re-authentication this recent (seconds).
    step_up_max_age: int = 300
    step_up_for_admin: bool = True  # the admin API counts as sensitive
    login_ttl: int = 300  # how long the second step of a sign-in may wait
    max_attempts: int = 5  # codes one pending sign-in may try
    # Users of these roles get tokens that reach only the enrolment until they have a factor.
    require_for_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebauthnSettings:
    """Passkeys (README, "Passkeys"): the relying party the browser binds them to."""

    rp_id: str = "localhost"  # the site's domain (or a parent of it); passkeys belong to it
    rp_name: str = "authsvc"  # shown by the browser when a passkey is made
    # Pages allowed to use them: scheme://host[:port], each host the rp_id or under it.
    origins: tuple[str, ...] = ("http://localhost:8000",)


@dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    jwt: JwtSettings = JwtSettings()
    auth: AuthSettings = AuthSettings()
    passwords: PasswordSettings = PasswordSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    password_reset: PasswordResetSettings = PasswordResetSettings()
    smtp: SmtpSettings = SmtpSettings()
    worker: WorkerSettings = WorkerSettings()
    lockout: LockoutSettings = LockoutSettings()
    alerts: AlertSettings = AlertSettings()
    cors: CorsSettings = CorsSettings()
    ui: UiSettings = UiSettings()
    migration: MigrationSettings = MigrationSettings()
    mfa: MfaSettings = MfaSettings()
    webauthn: WebauthnSettings = WebauthnSettings()
    log: LogSettings = LogSettings()
    data_dir: Path = Path("./data")

    def replace(self, **sections: object) -> Settings:
        """A copy with whole sections or `section={key: value}` dicts swapped in."""
        changes: dict[str, object] = {}
        for name, value in sections.items():
            current = getattr(self, name)
            if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
                value = dataclasses.replace(current, **value)  # type: ignore[type-var]
            changes[name] = value
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Settings)
    return {name: hint for name, hint in hints.items()
            if isinstance(hint, type) and dataclasses.is_dataclass(hint)}


def _coerce(value: object, hint: object, from_env: bool) -> object:
    """Turn a TOML value (or an environment string) into the field's type."""
    if hint is bool:
        if from_env and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "1"):
                return True
            if lowered in ("false", "0"):
                return False
            raise ValueError("expected true/false/1/0")
        if isinstance(value, bool):
            return value
        raise ValueError("expected a boolean")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError("expected a whole number")
        if isinstance(value, int):
            return value
        if from_env and isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        raise ValueError("expected a whole number")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_env and isinstance(value, str):
            return float(value)
        raise ValueError("expected a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError("expected a string")
    if hint is Rate:
        if isinstance(value, str):
            return Rate.parse(value)
        raise ValueError('expected a rate such as "10/minute"')
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item_type, _) = typing.get_args(hint)
        if from_env and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            raise ValueError("expected a list")
        return tuple(_coerce(item, item_type, from_env) for item in value)
    raise ValueError(f"unsupported setting type {hint!r}")


def _build_section(name: str, cls: type, file_values: Mapping[str, object],
                   env: Mapping[str, str]) -> object:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in file_values:
        if key not in known:
            raise ConfigError(f"[{name}] {key}: unknown setting")
    values: dict[str, object] = {}
    for key in known:
        env_name = f"AUTH_{name}_{key}".upper()
        raw: object
        if env_name in env:
            raw, from_env, where = env[env_name], True, env_name
        elif key in file_values:
            raw, from_env, where = file_values[key], False, f"[{name}] {key}"
        else:
            continue
        try:
            values[key] = _coerce(raw, hints[key], from_env)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc} (got {raw!r})") from exc
    return cls(**values)


def load_settings(path: str | Path | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Read config.toml (AUTH_CONFIG, else ./config.toml if present) and the environment."""
    env = dict(os.environ if env is None else env)
    if path is None:
        path = env.get("AUTH_CONFIG") or ("config.toml" if Path("config.toml").exists() else None)
    data: dict[str, object] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path}: not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    sections = _section_types()
    for name in data:
        if name not in sections:
            raise ConfigError(f"[{name}]: unknown section in {path}")
    built = {}
    for name, cls in sections.items():
        file_values = data.get(name, {})
        if not isinstance(file_values, dict):
            raise ConfigError(f"[{name}]: expected a table")
        built[name] = _build_section(name, cls, file_values, env)
    data_dir = Path(env.get("AUTH_DATA_DIR", "./data"))
    database = built["database"]
    if "AUTH_DATA_DIR" in env and isinstance(database, DatabaseSettings) and (
            database.url == DatabaseSettings.url):
        # The default SQLite file lives in the data directory, wherever that is moved.
        built["database"] = dataclasses.replace(
            database, url=f"sqlite:///{data_dir.absolute() / 'auth.db'}")
    settings = Settings(data_dir=data_dir, **built)  # type: ignore[arg-type]
    validate(settings)
    return settings


def env_key_names() -> list[str]:
    """Every AUTH_<SECTION>_<KEY> variable that names a setting."""
    return [f"AUTH_{name}_{f.name}".upper() for name, cls in _section_types().items()
            for f in dataclasses.fields(cls)]


def unknown_env_warnings(env: Mapping[str, str] | None = None) -> list[str]:
    """One line per AUTH_* variable that names no setting (a typo is otherwise silently
    ignored), with the closest known name."""
    env = os.environ if env is None else env
    known = env_key_names()
    lines = []
    for name in sorted(env):
        if (not name.startswith("AUTH_") or name in known or name in NON_KEY_ENV
                or name.startswith(NON_KEY_ENV_PREFIXES)):
            continue
        close = difflib.get_close_matches(name, [*known, *NON_KEY_ENV], n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"{name} is not a setting{hint}: ignored")
    return lines


def secret_bytes_needed(algorithm: str) -> int:
    """RFC 7518 3.2: an HMAC key at least as long as the hash output."""
    return {"HS256": 32, "HS384": 48, "HS512": 64}.get(algorithm, 32)


def _check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {message}")


def validate(s: Settings) -> None:
    """Range and consistency checks that types alone cannot express."""
    _check(1 <= s.server.port <= 65535, "[server] port", "must be 1..65535")
    _check(s.server.max_body_bytes >= 1024, "[server] max_body_bytes", "must be >= 1024")
    _check(1024 <= s.server.max_header_bytes <= 1048576, "[server] max_header_bytes",
           "must be 1024..1048576")
    _check(0 < s.server.header_timeout <= 300, "[server] header_timeout",
           "must be > 0 and <= 300 seconds")
    _check(0 < s.server.body_timeout <= 300, "[server] body_timeout",
           "must be > 0 and <= 300 seconds")
    _check(0 < s.server.send_timeout <= 300, "[server] send_timeout",
           "must be > 0 and <= 300 seconds")
    _check(s.server.max_connections >= 1, "[server] max_connections", "must be >= 1")
    _check(s.database.url.startswith(("sqlite:///", "postgresql://", "postgres://")),
           "[database] url", "must start with sqlite:/// or postgresql://")
    _check(1 <= s.database.timeout <= 300, "[database] timeout", "must be 1..300 seconds")
    _check(s.redis.url == "embedded" or s.redis.url.startswith(("redis://", "rediss://", "unix://")),
           "[redis] url", 'must be "embedded" or a redis://, rediss:// or unix:// URL')
    _check(bool(s.redis.prefix), "[redis] prefix", "must not be empty")
    _check(s.redis.socket_timeout > 0, "[redis] socket_timeout", "must be > 0")
    _check(s.jwt.algorithm in SUPPORTED_JWT_ALGORITHMS, "[jwt] algorithm",
           f"must be one of {', '.join(SUPPORTED_JWT_ALGORITHMS)}")
    min_secret = secret_bytes_needed(s.jwt.algorithm)
    _check(s.jwt.secret == "" or len(s.jwt.secret.encode()) >= min_secret, "[jwt] secret",
           f"must be at least {min_secret} bytes for {s.jwt.algorithm} "
           "(leave it empty to have one generated)")
    _check(s.jwt.secret.lower() not in {"changeme", "secret", "change-me"}, "[jwt] secret",
           "must not be a default value")
    _check(s.jwt.access_ttl > 0, "[jwt] access_ttl", "must be > 0")
    _check(s.jwt.refresh_ttl > 0, "[jwt] refresh_ttl", "must be > 0")
    _check(0 <= s.jwt.leeway <= 300, "[jwt] leeway", "must be 0..300 seconds")
    _check(0 <= s.jwt.rotation_grace <= 60, "[jwt] rotation_grace", "must be 0..60 seconds")
    _check(bool(s.auth.default_role), "[auth] default_role", "must not be empty")
    _check(s.auth.default_role in s.auth.self_register_roles, "[auth] default_role",
           "must be one of self_register_roles")
    _check("admin" not in s.auth.self_register_roles, "[auth] self_register_roles",
           "must not contain admin")
    for where, roles in (("[auth] self_register_roles", s.auth.self_register_roles),
                         ("[auth] extra_roles", s.auth.extra_roles)):
        _check(all(role and role.strip() == role and len(role) <= 64 for role in roles), where,
               "each role must be 1..64 characters without surrounding spaces")
    _check(s.log.level.upper() in LOG_LEVELS, "[log] level",
           f"must be one of {', '.join(LOG_LEVELS)} (any case)")
    p = s.passwords
    _check(1 <= p.min_length <= p.max_length, "[passwords] min_length", "must be 1..max_length")
    _check(p.max_length <= 4096, "[passwords] max_length", "must be <= 4096")
    _check(p.time_cost >= 1, "[passwords] time_cost", "must be >= 1")
    _check(p.memory_cost >= 8 * p.parallelism, "[passwords] memory_cost",
           "must be >= 8 * parallelism KiB")
    _check(p.parallelism >= 1, "[passwords] parallelism", "must be >= 1")
    _check(p.max_concurrent_hashes >= 1, "[passwords] max_concurrent_hashes", "must be >= 1")
    _check(s.password_reset.ttl > 0, "[password_reset] ttl", "must be > 0")
    _check(s.password_reset.max_mails_per_hour >= 1, "[password_reset] max_mails_per_hour",
           "must be >= 1")
    _check("{token}" in s.password_reset.url_template, "[password_reset] url_template",
           "must contain {token}")
    _check(1 <= s.smtp.port <= 65535, "[smtp] port", "must be 1..65535")
    _check(all(i >= 0 for i in s.worker.retry_intervals), "[worker] retry_intervals",
           "must be >= 0 seconds")
    _check(s.lockout.max_failures >= 1, "[lockout] max_failures", "must be >= 1")
    _check(s.lockout.window >= 1, "[lockout] window", "must be >= 1 second")
    _check(s.lockout.device_ttl >= 60, "[lockout] device_ttl", "must be >= 60 seconds")
    _check(s.auth.verify_emails or not s.auth.require_email_verification,
           "[auth] require_email_verification", "needs [auth] verify_emails = true")
    _check("{token}" in s.auth.verify_url_template, "[auth] verify_url_template",
           "must contain {token}")
    _check(s.auth.email_verification_ttl >= 60, "[auth] email_verification_ttl",
           "must be >= 60 seconds")
    _check("{token}" in s.alerts.url_template, "[alerts] url_template", "must contain {token}")
    _check(s.alerts.link_ttl >= 60, "[alerts] link_ttl", "must be >= 60 seconds")
    _validate_cors(s.cors)
    _validate_migration(s.migration)
    _validate_mfa(s.mfa)
    _validate_webauthn(s.webauthn)


def _validate_webauthn(w: WebauthnSettings) -> None:
    rp = w.rp_id
    _check(bool(rp) and rp == rp.lower() and "/" not in rp and ":" not in rp,
           "[webauthn] rp_id", "must be a lower-case domain, no scheme or port")
    _check(bool(w.origins), "[webauthn] origins", "must name at least one origin")
    for origin in w.origins:
        parts = urlsplit(origin)
        host = parts.hostname or ""
        _check(parts.scheme in ("https", "http") and not parts.path and bool(host)
               and (host == rp or host.endswith("." + rp))
               and (parts.scheme == "https" or host == "localhost"),
               "[webauthn] origins", f"{origin!r} must be https://host[:port] (http only for "
               f"localhost), its host {rp!r} or under it")


def _validate_mfa(m: MfaSettings) -> None:
    _check(m.encryption_key == "" or len(m.encryption_key.encode()) >= 32,
           "[mfa] encryption_key", "must be at least 32 bytes (leave it empty to have one "
           "generated)")
    _check(bool(m.issuer.strip()) and ":" not in m.issuer and len(m.issuer) <= 64,
           "[mfa] issuer", "must be 1..64 characters without ':'")
    _check(5 <= m.step_up_max_age <= 86400, "[mfa] step_up_max_age", "must be 5..86400 s")
    _check(30 <= m.login_ttl <= 3600, "[mfa] login_ttl", "must be 30..3600 seconds")
    _check(1 <= m.max_attempts <= 20, "[mfa] max_attempts", "must be 1..20")


def _validate_migration(m: MigrationSettings) -> None:
    """simplejwt's tokens only with a key long enough and a window that ends."""
    if not (m.enabled or m.accept_until):
        return
    _check(m.enabled, "[migration] simplejwt_signing_key", "must be set with accept_until")
    _check(m.simplejwt_algorithm in SUPPORTED_JWT_ALGORITHMS, "[migration] simplejwt_algorithm",
           f"must be one of {', '.join(SUPPORTED_JWT_ALGORITHMS)}")
    # A key short enough to guess would let anyone mint a token of any imported user. A flat
    # 32 bytes, not the hash's size: the key cannot be changed without refusing every token
    # it signed, and Django's generated SECRET_KEY (simplejwt's default) has 50, short of
    # HS512's 64.
    _check(len(m.simplejwt_signing_key.encode()) >= 32, "[migration] simplejwt_signing_key",
           "must be at least 32 bytes (Django's generated SECRET_KEY has 50)")
    _check(bool(m.simplejwt_user_id_claim), "[migration] simplejwt_user_id_claim",
           "must not be empty")
    _check(bool(m.accept_until), "[migration] accept_until",
           "must be set (the UTC time old tokens stop being accepted)")
    try:
        m.accept_until_epoch()
    except ValueError as exc:
        raise ConfigError(f"[migration] accept_until: {exc}: expected an RFC 3339 time such "
                          f"as 2027-01-31T00:00:00Z (got {m.accept_until!r})") from exc


# An origin as browsers send it: scheme://host[:port], lower case, no path, no trailing slash.
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
                     r"(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def _validate_cors(c: CorsSettings) -> None:
    """Never `*` with credentials (any site could read a user's answers); no `null` origin."""
    _check(not ("*" in c.allow_origins and c.allow_credentials), "[cors] allow_credentials",
           'must be false when [cors] allow_origins contains "*"')
    for origin in c.allow_origins:
        match = _ORIGIN.fullmatch(origin)
        _check(origin == "*" or (match is not None and _port_ok(origin)), "[cors] allow_origins",
               f"{origin!r} must be scheme://host[:port] in lower case, without a path "
               'or trailing slash (or "*")')
    _check(0 <= c.max_age <= 86400, "[cors] max_age", "must be 0..86400 seconds")


def _port_ok(origin: str) -> bool:
    port = re.search(r":([0-9]{1,5})$", origin.split("://", 1)[1])
    return port is None or 1 <= int(port.group(1)) <= 65535

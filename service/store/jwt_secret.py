"""The signing secret: from config, else generated once into the data directory (mode 0600)."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from service.config import Settings, secret_bytes_needed
from service.store.datadir import private_dir

log = logging.getLogger("authsvc.jwt_secret")

FILE_NAME = "jwt-secret"
MFA_KEY_FILE = "mfa-key"
MIN_BYTES = 32
_WHAT = {FILE_NAME: "[jwt] secret", MFA_KEY_FILE: "[mfa] encryption_key"}


def resolve(configured: str, data_dir: Path, min_bytes: int = MIN_BYTES,
            file_name: str = FILE_NAME) -> str:
    """The configured secret, or the one stored under `data_dir` as `file_name`, created on
    first use.

    Creation is atomic (write to a temp file, then link it into place), so processes
    starting together all end up with the one secret that won the race.
    """
    if configured:
        return configured
    path = data_dir / file_name
    if not path.exists():
        private_dir(data_dir)
        tmp = data_dir / f".{file_name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)  # fails if another process got there first: theirs wins
            log.warning("no %s configured: generated one into %s (keep it private; set it "
                        "in config to share one across machines)", _WHAT[file_name], path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    secret = path.read_text().strip()
    if len(secret.encode()) < min_bytes:
        raise RuntimeError(f"{path}: stored {_WHAT[file_name]} is shorter than {min_bytes} bytes")
    return secret


def for_settings(settings: Settings) -> str:
    """The secret of these settings, as the API and the worker both resolve it (the worker
    opens the API's sealed links with a key derived from it)."""
    return resolve(settings.jwt.secret, settings.data_dir,
                   secret_bytes_needed(settings.jwt.algorithm))


def mfa_key(settings: Settings) -> str:
    """The key that seals TOTP secrets and keys recovery-code hashes ([mfa] encryption_key)."""
    return resolve(settings.mfa.encryption_key, settings.data_dir, MIN_BYTES, MFA_KEY_FILE)

"""Helpers the tests share: a real worker process, a registered user, auth headers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from service.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def worker_env(settings: Settings) -> dict[str, str]:
    """Environment for a real `authsvc worker` process serving this test's queue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env.update({
        "AUTH_REDIS_URL": settings.redis.url,
        "AUTH_REDIS_PREFIX": settings.redis.prefix,
        "AUTH_SMTP_HOST": settings.smtp.host,
        "AUTH_SMTP_PORT": str(settings.smtp.port),
        "AUTH_SMTP_TIMEOUT": "5",
        "AUTH_WORKER_QUEUE": settings.worker.queue,
        "AUTH_WORKER_RETRY_INTERVALS": ",".join(map(str, settings.worker.retry_intervals)),
        "AUTH_DATABASE_URL": settings.database.url,
        "AUTH_JWT_SECRET": settings.jwt.secret,
        "AUTH_DATA_DIR": str(settings.data_dir),
        "PYTHONPATH": str(ROOT),
    })
    return env


def run_worker(settings: Settings, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a real RQ worker in burst mode: it sends what is queued, then exits."""
    return subprocess.run([sys.executable, "-m", "service.cli", "worker", "--burst"],
                          env=worker_env(settings), cwd=cwd, capture_output=True, text=True,
                          timeout=120)


USER = {"username": "alice", "email": "alice@example.com", "password": "correct horse battery",
        "password2": "correct horse battery", "display_name": "Alice"}


def register(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    body = {**USER, **overrides}
    if "password" in overrides and "password2" not in overrides:
        body["password2"] = overrides["password"]
    response = client.post("/api/v1/auth/register/", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

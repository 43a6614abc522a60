"""The mail queue belongs to one [redis] prefix: environments sharing a Redis database keep
their mail apart (RQ's own keys carry no prefix of ours)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from api import API, register
from rq import Queue
from support import Mailbox, app_settings, delete_prefixed, run_worker

from service.config import Settings, WorkerSettings
from service.store import mail


def test_the_queue_name_follows_the_prefix_unless_set() -> None:
    """Default prefix: the name the queue always had; another prefix: `{prefix}mail`; an
    explicit [worker] queue wins."""
    settings = Settings()
    assert mail.queue_name(settings) == "authsvc-mail"
    staging = settings.replace(redis={"prefix": "staging:"})
    assert mail.queue_name(staging) == "staging:mail"
    assert mail.queue_name(staging.replace(worker={"queue": "mine"})) == "mine"


@pytest.fixture
def other_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"authtest-{uuid.uuid4().hex[:10]}:"
    yield prefix
    delete_prefixed(redis_url, prefix)


def test_two_environments_on_one_redis_database_keep_their_mail_apart(
        tmp_path: Path, redis_url: str, redis_prefix: str, other_prefix: str,
        smtp_server: tuple[Mailbox, int], sync_redis: redis.Redis, make_client: Any,
        sqlite_template: Path) -> None:
    """Two apps, two prefixes, one Redis database, [worker] queue left at its default: each
    enqueues to its own queue, and each environment's worker sends only its own mail."""
    mailbox, port = smtp_server
    envs = []
    for name, prefix in [("a", redis_prefix), ("b", other_prefix)]:
        (tmp_path / name).mkdir()
        settings = app_settings(tmp_path / name, redis_url, prefix, port, sqlite_template)
        settings = settings.replace(worker=dataclasses.replace(
            settings.worker, queue=WorkerSettings.queue))  # the shipped default
        envs.append((name, settings, make_client(settings)))
    for name, _, client in envs:
        register(client, username=name, email=f"{name}@example.com")
        answer = client.post(API + "password-reset/", json={"email": f"{name}@example.com"})
        assert answer.status_code == 200, answer.text
    for _, settings, _ in envs:  # enqueued by a background task after the 200
        deadline = time.monotonic() + 10
        own = f"{settings.redis.prefix}mail"  # README: the queue is `{prefix}mail`
        while Queue(own, connection=sync_redis).count < 1:
            assert time.monotonic() < deadline, "the reset email was never queued"
            time.sleep(0.02)
    for name, settings, _ in envs:
        before = len(mailbox.messages)
        worker = run_worker(settings, tmp_path / name)
        assert worker.returncode == 0, worker.stderr
        sent = [m["To"] for m in mailbox.messages[before:]]
        assert sent == [f"{name}@example.com"], sent

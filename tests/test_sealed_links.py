"""Issue 9.10: no live link in anything Redis persists. Mail jobs carry their reset,
verification and "this wasn't me" links sealed for the worker (service/store/sealed_links.py);
the worker still delivers links that work."""

from __future__ import annotations

import contextlib
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from api import API, USER, login, register
from support import run_worker, wait_for_jobs

from service.config import Settings
from service.store.sealed_links import UnsealError, link_key, seal, unseal

LINK = re.compile(r"https://app\.example/(?:reset|verify|not-me)\?token=[A-Za-z0-9_-]+")


def linking(settings: Settings) -> Settings:
    """Verification mails, new-device alerts and resets, each with a recognisable link."""
    return settings.replace(
        auth={"verify_emails": True,
              "verify_url_template": "https://app.example/verify?token={token}"},
        alerts={"enabled": True, "url_template": "https://app.example/not-me?token={token}"},
        password_reset={"url_template": "https://app.example/reset?token={token}"})


def _values(connection: redis.Redis, key: bytes) -> list[bytes]:
    """Every value stored under `key`, whatever its type (the client decodes nothing)."""
    kind = connection.type(key)
    values: list[Any] = []
    if kind == b"string":
        values = [connection.get(key) or b""]
    elif kind == b"hash":
        values = [item for pair in connection.hgetall(key).items() for item in pair]
    elif kind == b"list":
        values = list(connection.lrange(key, 0, -1))
    elif kind == b"set":
        values = list(connection.smembers(key))
    elif kind == b"zset":
        values = [entry[0] for entry in connection.zrange(key, 0, -1, withscores=True)]
    return values


def persisted(settings: Settings, connection: redis.Redis, job_ids: list[str]) -> bytes:
    """Everything this test has in Redis: its prefixed keys, its queue's RQ keys and its
    jobs' hashes; every value also decompressed where it is zlib data (RQ compresses the
    pickled job payload, which an AOF reader would simply inflate)."""
    keys = set(connection.scan_iter(match=f"{settings.redis.prefix}*", count=1000))
    keys |= set(connection.scan_iter(match=f"rq:*{settings.worker.queue}*", count=1000))
    keys |= {f"rq:job:{job_id}".encode() for job_id in job_ids}
    keys |= {f"rq:results:{job_id}".encode() for job_id in job_ids}
    blob = []
    for key in keys:
        for value in _values(connection, key):
            blob.append(key + b"=" + value)
            with contextlib.suppress(zlib.error):
                blob.append(zlib.decompress(value))
    return b"\n".join(blob)


def mailed_links(mailbox: Any) -> dict[str, str]:
    found = {}
    for message in mailbox.messages:
        text = message.get_body(preferencelist=("plain",)).get_content()
        for link in LINK.findall(text):
            found[link.split("/")[3].split("?")[0]] = link
    return found


def test_queued_mail_holds_no_live_link_and_the_links_still_work(
        settings: Settings, make_client: Any, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Path) -> None:
    """A reset, a verification and a not-me link queued: neither a token nor a link is in
    any key of the test's Redis data (job payloads inflated); the worker delivers all three
    and each works."""
    mailbox, _ = smtp_server
    settings = linking(settings)
    client = make_client(settings)
    register(client)  # the verification mail
    assert login(client).status_code == 200
    assert client.post(API + "password-reset/", json={"email": USER["email"]}).status_code == 200
    job_ids = wait_for_jobs(settings, sync_redis, 3)
    queued = persisted(settings, sync_redis, job_ids)
    for job_id in job_ids:  # the scan does see inside the job payloads (recipient in each)
        data: bytes = sync_redis.hget(f"rq:job:{job_id}", "data") or b""  # type: ignore[assignment]
        payload = zlib.decompress(data)
        assert USER["email"].encode() in payload and payload in queued

    done = run_worker(settings, tmp_path)
    assert done.returncode == 0, done.stderr
    links = mailed_links(mailbox)
    assert set(links) == {"reset", "verify", "not-me"}, [m["Subject"] for m in mailbox.messages]
    after = persisted(settings, sync_redis, job_ids)  # finished jobs are kept a while
    for link in links.values():
        token = link.rsplit("=", 1)[1]
        for blob in (queued, after):
            assert token.encode() not in blob and link.encode() not in blob
        assert token not in done.stdout + done.stderr

    tokens = {kind: link.rsplit("=", 1)[1] for kind, link in links.items()}
    assert client.post(API + "verify-email/", json={"token": tokens["verify"]}).status_code == 200
    reset = client.post(API + "password-reset/confirm/", json={
        "token": tokens["reset"], "password": "a brand new passphrase",
        "password2": "a brand new passphrase"})
    assert reset.status_code == 200, reset.text
    assert client.post(API + "login/", json={"username_or_email": "alice",
                                             "password": "a brand new passphrase"}
                       ).status_code == 200
    assert client.post(API + "security/not-me/", json={"token": tokens["not-me"]}
                       ).status_code == 200


def test_a_sealed_link_opens_only_with_its_key_job_and_recipient() -> None:
    """AES-GCM with the job and recipient as associated data: moved into another job, sent
    to another address, opened with another secret or altered, it does not open."""
    key = link_key("s" * 40)
    sealed = seal(key, "https://app.example/reset?token=abc", job="j", to="a@example.com")
    link = "https://app.example/reset?token=abc"
    assert unseal(key, sealed, job="j", to="a@example.com") == link
    assert sealed != seal(key, link, job="j", to="a@example.com")  # a fresh nonce each time
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    attempts: tuple[Callable[[], str], ...] = (
                    lambda: unseal(key, sealed, job="other", to="a@example.com"),
                    lambda: unseal(key, sealed, job="j", to="evil@example.com"),
                    lambda: unseal(link_key("t" * 40), sealed, job="j", to="a@example.com"),
                    lambda: unseal(key, tampered, job="j", to="a@example.com"),
                    lambda: unseal(key, "v1.!!", job="j", to="a@example.com"),
                    lambda: unseal(key, "plain", job="j", to="a@example.com"))
    for attempt in attempts:
        with pytest.raises(UnsealError):
            attempt()

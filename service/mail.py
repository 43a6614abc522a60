"""Enqueue mail jobs for the RQ worker, by dotted path, off the event loop.

The web process never imports job code. The link in a job's arguments is a secret: the job
description names no link, and result/failure TTLs keep it no longer than it is valid.
"""

from __future__ import annotations

import asyncio
import hashlib

from redis import Redis
from rq import Queue, Retry

from .config import Settings

SEND_PASSWORD_RESET = "workers.mailer.send_password_reset"


class MailQueue:
    def __init__(self, settings: Settings, connection: Redis) -> None:
        self._queue = Queue(settings.worker.queue, connection=connection)
        self._retry = Retry(max=len(settings.worker.retry_intervals) or 1,
                            interval=list(settings.worker.retry_intervals) or [0])
        self._ttl = settings.password_reset.ttl
        self._result_ttl = settings.worker.result_ttl

    @property
    def queue(self) -> Queue:
        return self._queue

    def _enqueue_reset(self, to: str, username: str, link: str) -> str:
        recipient = hashlib.sha256(to.encode()).hexdigest()[:12]
        job = self._queue.enqueue_call(
            SEND_PASSWORD_RESET, kwargs={"to": to, "username": username, "link": link},
            description=f"password reset email to recipient {recipient}",
            retry=self._retry, ttl=self._ttl, failure_ttl=self._ttl,
            result_ttl=self._result_ttl)
        return job.id

    async def send_password_reset(self, to: str, username: str, link: str) -> str:
        """Queue the reset email; returns the job id. RQ's client is synchronous: use a thread."""
        return await asyncio.to_thread(self._enqueue_reset, to, username, link)

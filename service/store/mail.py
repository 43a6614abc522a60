"""Enqueue mail jobs for the RQ worker, by dotted path, off the event loop.

The web process never imports job code. A job's link is a live secret: it is queued only
sealed for the worker (sealed_links.py), the job description names no link, and result/failure
TTLs keep even the sealed text no longer than the link is valid.
"""

from __future__ import annotations

import asyncio
import re

from redis import Redis
from rq import Queue, Retry

from service.config import RedisSettings, Settings
from service.store.keys import digest
from service.store.sealed_links import seal

SEND_PASSWORD_RESET = "workers.mailer.send_password_reset"
SEND_SECURITY_ALERT = "workers.mailer.send_security_alert"
SEND_VERIFICATION = "workers.mailer.send_verification"


EMAIL_MAX = 254
EMAIL_LOCAL_MAX = 64
# The dot-atom form only: no quoting, comments, brackets or list separators, so an address
# can never name a second mailbox when it lands in a To header. Letters of any script pass
# (SMTPUTF8 addresses).
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+{_LABEL}", re.UNICODE)


def plain_address(address: str) -> bool:
    """`address`, exactly as given, is a dot-atom address of at most EMAIL_MAX characters:
    nothing in it that a mail client or a header would read as a comment, a quoted part, a
    second address or a new header line. The mailer sends only to such addresses."""
    return (len(address) <= EMAIL_MAX and _EMAIL.fullmatch(address) is not None
            and len(address.split("@")[0]) <= EMAIL_LOCAL_MAX)


# The queue of the default [redis] prefix keeps the name it had before names were derived.
DEFAULT_QUEUE = "authsvc-mail"


def queue_name(settings: Settings) -> str:
    """[worker] queue if set, else one per [redis] prefix: environments that share a Redis
    database keep their mail apart (RQ's keys carry no prefix of ours)."""
    if settings.worker.queue:
        return settings.worker.queue
    prefix = settings.redis.prefix
    return DEFAULT_QUEUE if prefix == RedisSettings.prefix else f"{prefix}mail"


class MailQueue:
    def __init__(self, settings: Settings, connection: Redis, link_key: bytes) -> None:
        self._link_key = link_key
        self._queue = Queue(queue_name(settings), connection=connection)
        self._retry = Retry(max=len(settings.worker.retry_intervals) or 1,
                            interval=list(settings.worker.retry_intervals) or [0])
        self._ttl = settings.password_reset.ttl
        self._alert_ttl = settings.alerts.link_ttl
        self._verify_ttl = settings.auth.email_verification_ttl
        self._result_ttl = settings.worker.result_ttl

    def _enqueue(self, job: str, what: str, kwargs: dict[str, str], ttl: int) -> str:
        link = kwargs.pop("link")
        kwargs["sealed_link"] = seal(self._link_key, link, job=job, to=kwargs["to"])
        recipient = digest(kwargs["to"])[:12]
        queued = self._queue.enqueue_call(
            job, kwargs=kwargs, description=f"{what} email to recipient {recipient}",
            retry=self._retry, ttl=ttl, failure_ttl=ttl, result_ttl=self._result_ttl)
        return queued.id

    async def send_password_reset(self, to: str, username: str, link: str) -> str:
        """Queue the reset email; returns the job id. RQ's client is synchronous: use a thread."""
        return await asyncio.to_thread(self._enqueue, SEND_PASSWORD_RESET, "password reset",
                                       {"to": to, "username": username, "link": link}, self._ttl)

    async def send_verification(self, to: str, username: str, link: str) -> str:
        """Queue the email-verification email."""
        return await asyncio.to_thread(self._enqueue, SEND_VERIFICATION, "email verification",
                                       {"to": to, "username": username, "link": link},
                                       self._verify_ttl)

    async def send_security_alert(self, to: str, username: str, kind: str, detail: str,
                                  link: str) -> str:
        """Queue a security alert (a kind of workers/mailer.py's ALERTS) with its "not me"
        link."""
        return await asyncio.to_thread(
            self._enqueue, SEND_SECURITY_ALERT, f"security alert ({kind})",
            {"to": to, "username": username, "kind": kind, "detail": detail, "link": link},
            self._alert_ttl)

"""Security alerts by email: each with a single-use "this wasn't me" link."""

from __future__ import annotations

import datetime as dt
import logging
import secrets

from service.config import AlertSettings
from service.store.cache import CachedUser
from service.store.links import OneTimeLinks
from service.store.mail import MailQueue

log = logging.getLogger("authsvc.alerts")


def alert_time(timestamp: float) -> str:
    """A moment as an alert email tells it to a person: minutes, in UTC."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


class Alerts:
    def __init__(self, settings: AlertSettings, links: OneTimeLinks, mail: MailQueue) -> None:
        self._s = settings
        self._links = links
        self._mail = mail

    @property
    def enabled(self) -> bool:
        return self._s.enabled

    async def send(self, user: CachedUser, kind: str, detail: str) -> None:
        """Queue an alert (a kind of workers/mailer.py's ALERTS); never fails the request."""
        if not self._s.enabled:
            return
        try:
            token = secrets.token_urlsafe(32)
            await self._links.put_link("notme", token, user.id, self._s.link_ttl)
            link = self._s.url_template.replace("{token}", token)
            await self._mail.send_security_alert(user.email, user.username, kind, detail, link)
        except Exception:
            log.exception("could not queue a %s alert for user %s", kind, user.id)

"""A local mail catcher for `authsvc dev`: an SMTP server that stores each message as a file."""

from __future__ import annotations

import json
import logging
import re
import shlex
import time
import uuid
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from service.config import Settings
from service.store.datadir import private_dir, write_private

log = logging.getLogger("authsvc.outbox")


@dataclass(frozen=True)
class TokenHint:
    """A link made from `template`: how to use its token without the page it points at."""

    pattern: re.Pattern[str]
    path: str
    body: dict[str, str]

    def command(self, api: str, text: str) -> str | None:
        match = self.pattern.search(text)
        if match is None:
            return None
        body = {k: v.replace("{token}", match.group(1)) for k, v in self.body.items()}
        return (f"curl -s -X POST {api}{self.path} -H 'Content-Type: application/json' "
                f"-d {shlex.quote(json.dumps(body))}")


def _hint(template: str, path: str, **body: str) -> TokenHint:
    before = template.split("{token}", 1)[0]
    return TokenHint(re.compile(re.escape(before) + r"([A-Za-z0-9_.~%-]+)"), path,
                     {"token": "{token}", **body})


def token_hints(settings: Settings) -> list[TokenHint]:
    """The hosted pages these links point at do not exist yet: say which POST they make."""
    new = "<new password>"
    return [_hint(settings.password_reset.url_template, "password-reset/confirm/",
                  password=new, password2=new),
            _hint(settings.auth.verify_url_template, "verify-email/"),
            _hint(settings.alerts.url_template, "security/not-me/")]


def connect_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to `host`."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def api_base(settings: Settings) -> str:
    host = connect_host(settings.server.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}/api/v1/auth/"


class OutboxHandler:
    def __init__(self, directory: Path, api: str = "",
                 hints: list[TokenHint] | None = None) -> None:
        self.directory = directory
        self.api = api
        self.hints = hints or []
        private_dir(directory)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's hook)
        stem = self.directory / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        write_private(stem.with_suffix(".eml"), envelope.content)
        message = message_from_bytes(envelope.content, policy=policy.default)
        # The .eml is quoted-printable; a decoded copy lets a person copy the link as is.
        text = message.get_body(preferencelist=("plain",))
        readable = stem.with_suffix(".txt")
        body = text.get_content() if text is not None else ""
        write_private(readable, (f"To: {message['To']}\nSubject: {message['Subject']}\n\n"
                                 + body).encode())
        commands = [c for c in (h.command(self.api, body) for h in self.hints) if c]
        # Dev only: the token is in the saved file anyway, and its page is not served here.
        todo = f"; to use its link: {commands[0]}" if commands else ""
        log.info("mail to %s (%s) saved to %s%s", ", ".join(envelope.rcpt_tos),
                 message["Subject"], readable, todo)
        return "250 Message accepted for delivery"


def start(directory: Path, settings: Settings) -> Controller:
    """Run the catcher on [smtp] host:port in a background thread; stop() it when done."""
    host, port = settings.smtp.host, settings.smtp.port
    handler = OutboxHandler(directory, api_base(settings), token_hints(settings))
    controller = Controller(handler, hostname=host, port=port)
    controller.start()
    log.info("no SMTP server at %s:%s: catching mail into %s", host, port, directory)
    return controller

"""A local mail catcher for `authsvc dev`: an SMTP server that stores each message as a file."""

from __future__ import annotations

import logging
import time
import uuid
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger("authsvc.outbox")


class OutboxHandler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        stem = self.directory / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        stem.with_suffix(".eml").write_bytes(envelope.content)
        message = message_from_bytes(envelope.content, policy=policy.default)
        # The .eml is quoted-printable; a decoded copy lets a person copy the link as is.
        text = message.get_body(preferencelist=("plain",))
        readable = stem.with_suffix(".txt")
        readable.write_text(f"To: {message['To']}\nSubject: {message['Subject']}\n\n"
                            + (text.get_content() if text is not None else ""))
        log.info("mail to %s (%s) saved to %s", ", ".join(envelope.rcpt_tos),
                 message["Subject"], readable)
        return "250 Message accepted for delivery"


def start(directory: Path, host: str, port: int) -> Controller:
    """Run the catcher on host:port in a background thread; stop() it when done."""
    controller = Controller(OutboxHandler(directory), hostname=host, port=port)
    controller.start()
    log.info("no SMTP server at %s:%s: catching mail into %s", host, port, directory)
    return controller

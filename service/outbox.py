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
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        path = self.directory / name
        path.write_bytes(envelope.content)
        subject = message_from_bytes(envelope.content, policy=policy.default)["Subject"]
        log.info("mail to %s (%s) saved to %s", ", ".join(envelope.rcpt_tos), subject, path)
        return "250 Message accepted for delivery"


def start(directory: Path, host: str, port: int) -> Controller:
    """Run the catcher on host:port in a background thread; stop() it when done."""
    controller = Controller(OutboxHandler(directory), hostname=host, port=port)
    controller.start()
    log.info("no SMTP server at %s:%s: catching mail into %s", host, port, directory)
    return controller

"""RQ jobs that send mail over SMTP. The web process never imports this.

A job raises on any SMTP failure so RQ retries it (with the backoff declared where it was
enqueued, see service/store/mail.py) and, past the last retry, keeps it in the failed registry.
Its link arrives sealed (service/store/sealed_links.py) and is opened only here, just before
sending.
"""

from __future__ import annotations

import html
import logging
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from functools import lru_cache

from service.config import Settings, SmtpSettings, load_settings
from service.store import jwt_secret

# The dotted paths the API enqueues: a sealed link opens only in its own job.
from service.store.mail import (
    SEND_PASSWORD_RESET,
    SEND_SECURITY_ALERT,
    SEND_VERIFICATION,
    plain_address,
)
from service.store.sealed_links import link_key, unseal

log = logging.getLogger("authsvc.worker")

@lru_cache(maxsize=1)
def _settings() -> Settings:
    """The worker process's own configuration (config.toml and AUTH_* environment)."""
    return load_settings()


@lru_cache(maxsize=1)
def _link_key() -> bytes:
    """The API's link key: from the JWT secret both processes share ([jwt] secret, else the
    one generated into the data directory)."""
    return link_key(jwt_secret.for_settings(_settings()))


def _link(job: str, to: str, sealed_link: str, link: str) -> str:
    """The job's link, unsealed (UnsealError, so the job fails, when it does not open). A
    plain `link` comes only from a job queued by a version that did not seal links."""
    return unseal(_link_key(), sealed_link, job=job, to=to) if sealed_link else link


def _message(smtp: SmtpSettings, to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = smtp.from_address
    message["To"] = to
    message["Message-ID"] = make_msgid(domain="authsvc.local")
    return message


def password_reset_message(smtp: SmtpSettings, to: str, username: str, link: str,
                           ttl_minutes: int) -> EmailMessage:
    message = _message(smtp, to, "Reset your password")
    message.set_content(
        f"Hello {username},\n\n"
        "Someone asked to reset the password of your account.\n"
        f"Open this link within {ttl_minutes} minutes to choose a new password:\n\n"
        f"{link}\n\n"
        "If that was not you, ignore this email: your password stays as it is.\n")
    name, url = html.escape(username), html.escape(link, quote=True)
    message.add_alternative(
        "<!doctype html><html><body>"
        f"<p>Hello {name},</p>"
        "<p>Someone asked to reset the password of your account.</p>"
        f'<p><a href="{url}">Choose a new password</a> (valid {ttl_minutes} minutes).</p>'
        "<p>If that was not you, ignore this email: your password stays as it is.</p>"
        "</body></html>", subtype="html")
    return message


def deliver(smtp: SmtpSettings, message: EmailMessage, to: str) -> None:
    """Send one message to exactly `to` (never recipients parsed out of its headers); any
    failure raises, so the job is retried."""
    if not plain_address(to):  # smtplib would parse a comment or a second address out of it
        raise ValueError("the recipient is not a plain email address")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as client:
        if smtp.starttls:
            client.starttls()
        if smtp.username:
            client.login(smtp.username, smtp.password)
        client.send_message(message, to_addrs=[to])


def _send(to: str, what: str, build: Callable[[Settings], EmailMessage]) -> None:
    """Build and deliver one message, only to a plain dot-atom address: `a(1)b@x` would go
    to `ab@x` (smtplib reads the comment), a line end would start a header. Such an address
    is refused for good (logged, not retried): no retry makes it deliverable."""
    if not plain_address(to):
        log.error("%s not sent: the recipient is not a plain email address", what)
        return
    settings = _settings()
    message = build(settings)
    deliver(settings.smtp, message, to)
    log.info("%s sent (message %s)", what, message["Message-ID"])


def send_password_reset(to: str, username: str, sealed_link: str = "", link: str = "") -> None:
    """The RQ job. The link is a secret: it is never logged."""
    _send(to, "password reset email", lambda settings: password_reset_message(
        settings.smtp, to, username, _link(SEND_PASSWORD_RESET, to, sealed_link, link),
        max(1, settings.password_reset.ttl // 60)))


ALERTS = {
    "new_device": ("New sign-in to your account",
                   "Your account was just signed in to from a device it had not used before"),
    "token_reuse": ("Your session was ended: possible token theft",
                    "A sign-in token of your account was used again after it had been replaced, "
                    "which happens when it was copied; that session has been ended"),
    "mfa_enabled": ("Two-factor sign-in is on",
                    "An authenticator app was set up for your account: signing in now asks for "
                    "its code after your password"),
    "mfa_changed": ("Your authenticator app was replaced",
                    "A new authenticator app was set up for your account; the old one no longer "
                    "works"),
    "mfa_disabled": ("Two-factor sign-in is off",
                     "The authenticator app and recovery codes of your account were removed: "
                     "signing in asks for your password only"),
    "totp_removed": ("Your authenticator app was removed",
                     "The authenticator app of your account was removed; your passkeys still "
                     "work as its second factor"),
    "passkey_added": ("A passkey was added to your account",
                      "A new passkey can now sign in to your account"),
    "passkey_removed": ("A passkey was removed from your account",
                        "One of your passkeys can no longer sign in to your account"),
    "password_removed": ("Your account has no password any more",
                         "Your account now signs in with its passkeys only; a password reset "
                         "by email sets a password again"),
    "recovery_codes_regenerated": ("New recovery codes",
                                   "New recovery codes were made for your account; the old "
                                   "ones no longer work"),
    "recovery_code_used": ("A recovery code was used",
                           "One of your recovery codes was used to sign in or confirm it was "
                           "you; each works once"),
    "mfa_reset": ("An administrator removed your second factor",
                  "An administrator removed the authenticator app and recovery codes of your "
                  "account: signing in asks for your password only until you set one up again"),
}


def security_alert_message(smtp: SmtpSettings, to: str, username: str, kind: str, detail: str,
                           link: str) -> EmailMessage:
    subject, what = ALERTS[kind]
    message = _message(smtp, to, subject)
    message.set_content(
        f"Hello {username},\n\n{what}.\n{detail}\n\n"
        "If this was you, there is nothing to do.\n"
        "If it was not, open this link: it signs you out everywhere and sends you a link to "
        f"choose a new password:\n\n{link}\n")
    message.add_alternative(
        "<!doctype html><html><body>"
        f"<p>Hello {html.escape(username)},</p><p>{html.escape(what)}.<br>"
        f"{html.escape(detail)}</p><p>If this was you, there is nothing to do.</p>"
        f'<p>If it was not, <a href="{html.escape(link, quote=True)}">this wasn\'t me</a>: '
        "it signs you out everywhere and sends you a link to choose a new password.</p>"
        "</body></html>", subtype="html")
    return message


def send_security_alert(to: str, username: str, kind: str, detail: str,
                        sealed_link: str = "", link: str = "") -> None:
    """The RQ job for a security alert. The link is a secret: it is never logged."""
    _send(to, f"security alert ({kind})", lambda settings: security_alert_message(
        settings.smtp, to, username, kind, detail,
        _link(SEND_SECURITY_ALERT, to, sealed_link, link)))


def verification_message(smtp: SmtpSettings, to: str, username: str, link: str) -> EmailMessage:
    message = _message(smtp, to, "Confirm your email address")
    message.set_content(f"Hello {username},\n\nOpen this link to confirm that this address is "
                        f"yours:\n\n{link}\n\nIf you did not sign up, ignore this email.\n")
    message.add_alternative(
        "<!doctype html><html><body>"
        f"<p>Hello {html.escape(username)},</p>"
        f'<p><a href="{html.escape(link, quote=True)}">Confirm your email address</a>.</p>'
        "<p>If you did not sign up, ignore this email.</p></body></html>", subtype="html")
    return message


def send_verification(to: str, username: str, sealed_link: str = "", link: str = "") -> None:
    """The RQ job for an email-verification email. The link is never logged."""
    _send(to, "verification email", lambda settings: verification_message(
        settings.smtp, to, username, _link(SEND_VERIFICATION, to, sealed_link, link)))

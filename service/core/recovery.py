"""Everything that reaches the user by email link: password reset, email verification and
"this wasn't me". Tokens are random, stored only as hashes, single use (GETDEL)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from service.config import Settings
from service.core.cached_users import cached
from service.core.limits import RateLimiter, client_key
from service.core.passwords import PasswordHasher, policy_problems
from service.errors import ValidationFailed
from service.store.cache import UserCache
from service.store.links import OneTimeLinks
from service.store.mail import MailQueue
from service.store.sessions import SessionStore
from service.store.users import UserStore

log = logging.getLogger("authsvc.recovery")

BAD_TOKEN = "Invalid or expired token."


@dataclass(frozen=True)
class ResetConfirmInput:
    token: str
    password: str


class RecoveryService:
    def __init__(self, settings: Settings, users: UserStore, cache: UserCache,
                 links: OneTimeLinks, sessions: SessionStore, hasher: PasswordHasher,
                 mail: MailQueue, limiter: RateLimiter) -> None:
        self._s = settings
        self._users = users
        self._cache = cache
        self._links = links
        self._sessions = sessions
        self._hasher = hasher
        self._mail = mail
        self._limiter = limiter

    # -- password reset -----------------------------------------------------------------
    async def request_reset(self, email: str, client_ip: str) -> None:
        """Rate-limit the client only; the rest runs after the answer (see send_reset). No
        per-address limit here: a flood for one address must not change what its owner is
        answered; the mailbox is protected by the mail cap instead."""
        await self._limiter.check("password_reset", client_key(client_ip))

    async def _may_mail(self, address: str) -> bool:
        """Count a mail anyone can trigger to `address`; False past [password_reset]
        max_mails_per_hour. Silent: the request that asked for it was answered 200 anyway."""
        if await self._limiter.mail_allowed(address, self._s.password_reset.max_mails_per_hour):
            return True
        log.warning("mail cap reached for an address: a requested email was not sent")
        return False

    async def send_reset(self, email: str, *, capped: bool = True) -> None:
        """Mint a reset token and queue the email; runs after the response, so known and
        unknown emails answer alike and no caller waits for SMTP. `capped`: counted against
        the address's mail cap (see _may_mail)."""
        try:
            user = await self._users.by_email(email)
            if user is None or not user.is_active:
                return
            if capped and not await self._may_mail(user.email):
                return
            token = secrets.token_urlsafe(32)
            await self._links.put_reset(token, user.id, user.token_version,
                                        self._s.password_reset.ttl)
            link = self._s.password_reset.url_template.replace("{token}", token)
            job_id = await self._mail.send_password_reset(user.email, user.username, link)
            log.info("password reset email queued for user %s (job %s)", user.id, job_id)
        except Exception:
            log.exception("could not queue a password reset email")

    async def confirm_reset(self, data: ResetConfirmInput) -> None:
        taken = await self._links.take_reset(data.token)
        if taken is None:
            raise ValidationFailed.on("token", BAD_TOKEN)
        user_id, version = taken.user_id, taken.version
        try:
            user = await self._users.by_id(user_id)
            if user is None or not user.is_active or user.token_version != version:
                raise ValidationFailed.on("token", BAD_TOKEN)
            problems = policy_problems(data.password, self._s.passwords,
                                       username=user.username, email=user.email)
            if problems:
                raise ValidationFailed({"password": problems})
            new_hash = await self._hasher.hash(data.password)
            await self._cache.forget(user.id)
            changed = await self._users.set_password(user.id, new_hash, version)
            if changed is None:  # a change or another reset landed meanwhile
                raise ValidationFailed.on("token", BAD_TOKEN)
        except ValidationFailed as exc:
            if exc.errors.keys() != {"token"}:  # a bad new password must not burn the link
                await self._links.restore_reset(data.token, taken)
            raise
        except BaseException:
            await self._links.restore_reset(data.token, taken)
            raise
        await self._cache.put(cached(changed))  # re-read after the write, never stale
        await self._sessions.end_all(user.id)
        log.info("password reset for user %s", user.id)

    # -- email verification -------------------------------------------------------------
    async def send_verification(self, email: str) -> None:
        """Mail a verification link (after the response); unknown or verified: nothing. The
        mail at registration counts against the address's mail cap too."""
        try:
            user = await self._users.by_email(email)
            if user is None or user.email_verified or not user.is_active:
                return
            if not await self._may_mail(user.email):
                return
            token = secrets.token_urlsafe(32)
            await self._links.put_link("verify", token, user.id,
                                       self._s.auth.email_verification_ttl)
            link = self._s.auth.verify_url_template.replace("{token}", token)
            await self._mail.send_verification(user.email, user.username, link)
        except Exception:
            log.exception("could not queue a verification email")

    async def request_verification(self, email: str, client_ip: str) -> None:
        """verify-email/resend/: like password-reset/, the client is rate-limited, the address
        only by the mail cap; the rest runs after the answer."""
        await self._limiter.check("password_reset", client_key(client_ip))

    async def verify_email(self, token: str) -> None:
        user_id = await self._links.take_link("verify", token)
        # A deleted account's link is dead (ids are never reused: it cannot reach another).
        if user_id is None or await self._users.by_id(user_id) is None:
            raise ValidationFailed.on("token", BAD_TOKEN)
        await self._users.set_email_verified(user_id)
        log.info("email verified for user %s", user_id)

    async def not_me(self, token: str, client_ip: str) -> None:
        """The confirming POST behind an alert's link: end every session, start a reset. Only
        the client is rate-limited: the token is a secret nobody else can flood. Its reset
        mail skips the mail cap: the single-use link came from that mailbox, and a flood of
        reset requests must not silence the owner's way out."""
        await self._limiter.check("password_reset", client_key(client_ip))
        user_id = await self._links.take_link("notme", token)
        row = await self._users.by_id(user_id) if user_id is not None else None
        if row is None:
            raise ValidationFailed.on("token", BAD_TOKEN)
        ended = await self._sessions.end_all(row.id)
        log.warning("user %s reported a sign-in as not theirs: %s sessions ended", row.id, ended)
        await self.send_reset(row.email, capped=False)

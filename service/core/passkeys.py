"""Passkeys (WebAuthn, via py_webauthn): register several per user, sign in without a
username (discoverable credentials, user verification required), serve as a second factor
after the password and for step-up, and let an account drop its password.

Every assertion is judged here, one check at a time, so each refusal says which failed: the
challenge (single use, what it was handed out for), the origin, the relying party's id
hash, user verification, the credential, the signature, and the sign count (a count that
does not move forward is a cloned authenticator). py_webauthn does the cryptography.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    decode_credential_public_key,
    decoded_public_key_to_cryptography,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from service.config import Settings
from service.core import django_hashes
from service.core.alerts import Alerts, alert_time
from service.core.authentication import Caller
from service.core.cached_users import cached
from service.core.limits import RateLimiter, client_key
from service.core.mfa_crypto import MfaKey, new_recovery_codes
from service.core.passwords import usable
from service.core.sessions import Client, SessionService, SignIn
from service.core.step_up import StepUp
from service.core.tokens import Grant
from service.errors import (
    EmailNotVerified,
    InvalidCredentials,
    MfaTokenInvalid,
    NotFound,
    PasskeyRefused,
    ValidationFailed,
)
from service.store.keys import digest
from service.store.mfa import Factors, MfaStore
from service.store.mfa_logins import PendingLogins
from service.store.passkeys import DuplicateCredential, Passkey, PasskeyStore
from service.store.users import UserStore
from service.store.webauthn_challenges import CHALLENGE_TTL, Challenges

log = logging.getLogger("authsvc.passkeys")

AMR = "webauthn"
UNUSABLE_PASSWORD = django_hashes.UNUSABLE_PREFIX  # core/passwords.usable: none matches
LAST_FACTOR = ("This account has no password: keep at least two passkeys, or one and unused "
               "recovery codes.")
NOT_YET = ("Add a second passkey (or keep unused recovery codes with one) before removing "
           "the password: it is how you get back in when a device is lost.")
ROLE_NEEDS_FACTOR = "Your role requires two-factor sign-in: keep a passkey or an authenticator."


# WebAuthn Level 3 caps a credential id at 1023 bytes; a list of transports is short.
MAX_CREDENTIAL_ID = 1023
MAX_TRANSPORTS = 8


def _check_registration(raw_id: bytes, credential_id: bytes, public_key: bytes) -> None:
    """What py_webauthn lets through: an id over the spec's bound or not the one the browser
    named, a public key that is no key."""
    if len(credential_id) > MAX_CREDENTIAL_ID or credential_id != raw_id:
        raise ValidationFailed.on("credential", "The passkey was refused: a bad credential id.")
    try:
        decoded_public_key_to_cryptography(decode_credential_public_key(public_key))
    except Exception as exc:
        raise ValidationFailed.on("credential", "The passkey was refused: a bad public key.") \
            from exc


def passwordless_ok(factors: Factors) -> bool:
    """An account without a password still has a way back in when one device is lost."""
    return factors.passkeys >= 2 or (factors.passkeys == 1 and factors.codes_left > 0)


@dataclass(frozen=True)
class Registered:
    passkey: Passkey
    recovery_codes: list[str]
    access: str


class Assertions:
    """Judges WebAuthn assertions against the passkeys on file (shared by the sign-in, the
    second factor and step-up)."""

    def __init__(self, settings: Settings, store: PasskeyStore, challenges: Challenges,
                 clock: Callable[[], float] = time.time) -> None:
        self._rp_id = settings.webauthn.rp_id
        self._rp_hash = hashlib.sha256(settings.webauthn.rp_id.encode()).digest()
        self._origins = list(settings.webauthn.origins)
        self._store = store
        self._challenges = challenges
        self._clock = clock

    async def options(self, purpose: str, allow: list[Passkey], *,
                      user_verification: UserVerificationRequirement) -> dict[str, Any]:
        options = generate_authentication_options(
            rp_id=self._rp_id, timeout=CHALLENGE_TTL * 1000,
            allow_credentials=[_descriptor(p) for p in allow],
            user_verification=user_verification)
        await self._challenges.put(bytes_to_base64url(options.challenge), purpose)
        return json.loads(options_to_json(options))  # type: ignore[no-any-return]

    async def verify(self, credential: dict[str, Any], purpose: str, *, user_id: int | None,
                     require_uv: bool) -> Passkey:
        """The passkey that signed this assertion, its use recorded; PasskeyRefused else."""
        try:
            parsed = parse_authentication_credential_json(credential)
            client_data = parse_client_data_json(parsed.response.client_data_json)
            auth_data = parse_authenticator_data(parsed.response.authenticator_data)
        except Exception as exc:  # untrusted bytes (deep JSON included): the caller's fault
            raise PasskeyRefused("malformed") from exc
        if await self._challenges.take(bytes_to_base64url(client_data.challenge)) != purpose:
            raise PasskeyRefused("challenge_invalid")
        if client_data.type != "webauthn.get":
            raise PasskeyRefused("malformed")
        if client_data.origin not in self._origins:
            raise PasskeyRefused("wrong_origin")
        if auth_data.rp_id_hash != self._rp_hash:
            raise PasskeyRefused("wrong_rp_id")
        if require_uv and not auth_data.flags.uv:
            raise PasskeyRefused("user_verification_missing")
        passkey = await self._store.by_credential_id(bytes_to_base64url(parsed.raw_id))
        handle = parsed.response.user_handle
        if (passkey is None or (user_id is not None and passkey.user_id != user_id)
                or (handle and bytes_to_base64url(handle) != passkey.user_handle)):
            raise PasskeyRefused("unknown_credential")
        try:
            # The count is judged after the signature (py_webauthn judges it first): an
            # unsigned probe must learn nothing of the stored count, nor raise a clone alarm.
            verified = verify_authentication_response(
                credential=parsed, expected_challenge=client_data.challenge,
                expected_rp_id=self._rp_id, expected_origin=self._origins,
                credential_public_key=passkey.public_key, credential_current_sign_count=0,
                require_user_verification=require_uv)
        except Exception as exc:
            raise PasskeyRefused("bad_signature") from exc
        count = verified.new_sign_count
        if (count > 0 or passkey.sign_count > 0) and count <= passkey.sign_count:
            log.warning("security: passkey %s of user %s: sign count went backwards "
                        "(a cloned authenticator?)", passkey.id, passkey.user_id)
            raise PasskeyRefused("sign_count_regressed")
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        if not await self._store.record_use(passkey, verified.new_sign_count,
                                            verified.credential_backed_up, now):
            log.warning("security: passkey %s of user %s: sign count reused", passkey.id,
                        passkey.user_id)
            raise PasskeyRefused("sign_count_regressed")
        return passkey


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    known = {t.value: t for t in AuthenticatorTransport}
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(passkey.credential_id),
        transports=[known[t] for t in passkey.transports if t in known] or None)


class PasskeyService:
    def __init__(self, settings: Settings, users: UserStore, store: PasskeyStore,
                 mfa: MfaStore, key: MfaKey, assertions: Assertions, challenges: Challenges,
                 sessions: SessionService, step_up: StepUp, pending: PendingLogins,
                 alerts: Alerts, limiter: RateLimiter,
                 clock: Callable[[], float] = time.time) -> None:
        self._s = settings
        self._users = users
        self._store = store
        self._mfa = mfa
        self._key = key
        self._assertions = assertions
        self._challenges = challenges
        self._sessions = sessions
        self._step_up = step_up
        self._pending = pending
        self._alerts = alerts
        self._limiter = limiter
        self._clock = clock

    # -- registration ----------------------------------------------------------------------
    async def registration_options(self, caller: Caller) -> dict[str, Any]:
        """What navigator.credentials.create() needs; a recent sign-in wanted (a stolen old
        session must not add a way in of its own)."""
        await self._step_up.require_recent(caller)
        user = caller.user
        existing = await self._store.of_user(user.id)
        handle = (existing[0].user_handle if existing
                  else bytes_to_base64url(secrets.token_bytes(32)))
        options = generate_registration_options(
            rp_id=self._s.webauthn.rp_id, rp_name=self._s.webauthn.rp_name,
            user_name=user.username, user_id=base64url_to_bytes(handle),
            user_display_name=user.display_name or user.username,
            timeout=CHALLENGE_TTL * 1000,
            exclude_credentials=[_descriptor(p) for p in existing],
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED))
        await self._challenges.put(bytes_to_base64url(options.challenge),
                                   f"reg:{user.id}:{handle}")
        return json.loads(options_to_json(options))  # type: ignore[no-any-return]

    async def register(self, caller: Caller, credential: dict[str, Any],
                       name: str) -> Registered:
        await self._step_up.require_recent(caller)
        user_id = caller.user.id
        try:
            parsed = parse_registration_credential_json(credential)
            client_data = parse_client_data_json(parsed.response.client_data_json)
        except Exception as exc:  # untrusted bytes: anything unparseable is the caller's
            raise ValidationFailed.on("credential", "Not a WebAuthn registration.") from exc
        purpose = await self._challenges.take(bytes_to_base64url(client_data.challenge))
        prefix = f"reg:{user_id}:"
        if purpose is None or not purpose.startswith(prefix):
            raise ValidationFailed.on("credential", "This registration has expired or was "
                                                    "already used: start again.")
        try:
            verified = verify_registration_response(
                credential=parsed, expected_challenge=client_data.challenge,
                expected_rp_id=self._s.webauthn.rp_id,
                expected_origin=list(self._s.webauthn.origins))
        except WebAuthnException as exc:
            raise ValidationFailed.on("credential", f"The passkey was refused: {exc}") from exc
        except Exception as exc:  # a malformed key or structure py_webauthn does not wrap
            raise ValidationFailed.on("credential", "The passkey was refused.") from exc
        _check_registration(parsed.raw_id, verified.credential_id,
                            verified.credential_public_key)
        extensions = credential.get("clientExtensionResults")
        cred_props = extensions.get("credProps") if isinstance(extensions, dict) else None
        resident = cred_props.get("rk") if isinstance(cred_props, dict) else None
        transports = tuple(dict.fromkeys(t.value for t in parsed.response.transports or ()))
        # One transaction with the user's row locked, as confirming an authenticator does
        # (core/mfa.py): the first factor gets the codes judged where they are written, and
        # a Redis failing at the session's new token rolls the passkey back.
        async with self._mfa.locked(user_id):
            before = await self._mfa.factors(user_id)
            codes = new_recovery_codes() if not before.any else []
            try:
                passkey = await self._store.add(
                    user_id=user_id, credential_id=bytes_to_base64url(verified.credential_id),
                    user_handle=purpose.removeprefix(prefix),
                    public_key=verified.credential_public_key,
                    sign_count=verified.sign_count, name=name or "Passkey",
                    transports=transports[:MAX_TRANSPORTS],
                    backup_eligible=verified.credential_device_type == "multi_device",
                    backup_state=verified.credential_backed_up,
                    discoverable=resident if isinstance(resident, bool) else None,
                    at=dt.datetime.fromtimestamp(self._clock(), dt.UTC))
            except DuplicateCredential as exc:
                raise ValidationFailed.on("credential", "The passkey was refused.") from exc
            if codes:
                await self._mfa.replace_codes(user_id, [self._key.code_hash(user_id, c)
                                                        for c in codes])
            access, _ = await self._sessions.regrant(
                caller, AMR, Factors(before.totp, before.codes_left + len(codes),
                                     before.passkeys + 1), renew=False)
        log.info("user %s: passkey %s added", user_id, passkey.id)
        await self._alert(caller, "passkey_added")
        return Registered(passkey, codes, access)

    # -- the user's list -------------------------------------------------------------------
    async def list(self, caller: Caller) -> list[Passkey]:
        return await self._store.of_user(caller.user.id)

    async def rename(self, caller: Caller, key_id: str, name: str) -> Passkey:
        renamed = await self._store.rename(caller.user.id, key_id, name)
        if renamed is None:
            raise NotFound()
        return renamed

    async def delete(self, caller: Caller, key_id: str) -> None:
        """Deleting one wants a recent sign-in; the last strong factor of a passwordless
        account (or of a role that requires one) cannot go."""
        await self._step_up.require(caller)
        user_id = caller.user.id
        async with self._mfa.locked(user_id):  # the rules hold however many requests race
            if not any(p.credential_id == key_id for p in await self._store.of_user(user_id)):
                raise NotFound()
            factors = await self._mfa.factors(user_id)
            after = Factors(factors.totp, factors.codes_left, factors.passkeys - 1)
            row = await self._users.by_id(user_id)
            if row is not None and not usable(row.password_hash) and not \
                    passwordless_ok(after):
                raise ValidationFailed.on("non_field_errors", LAST_FACTOR)
            if caller.user.role in self._s.mfa.require_for_roles and not after.any:
                raise ValidationFailed.on("non_field_errors", ROLE_NEEDS_FACTOR)
            if not await self._store.delete(user_id, key_id):
                raise NotFound()
            if not after.any:  # recovery codes back up a factor; none is left
                await self._mfa.remove_all(user_id)
        log.info("user %s: a passkey removed", user_id)
        await self._alert(caller, "passkey_removed")

    async def remove_password(self, caller: Caller) -> None:
        """Passwordless from now on: only with two passkeys, or one and unused recovery
        codes (a lost device must not lock the owner out). A reset by email sets one again."""
        await self._step_up.require(caller)
        async with self._mfa.locked(caller.user.id):
            if not passwordless_ok(await self._mfa.factors(caller.user.id)):
                raise ValidationFailed.on("non_field_errors", NOT_YET)
            await self._users.remove_password(caller.user.id,
                                              UNUSABLE_PASSWORD + secrets.token_urlsafe(30))
        log.info("user %s: password removed (passwordless)", caller.user.id)
        await self._alert(caller, "password_removed")

    # -- signing in ------------------------------------------------------------------------
    async def login_options(self, client: Client) -> dict[str, Any]:
        """Asked by every load of a sign-in page (autofill): no guess is made with it, so it
        spends no login budget; its challenge lives CHALLENGE_TTL in Redis."""
        return await self._assertions.options(
            "login", [], user_verification=UserVerificationRequirement.REQUIRED)

    async def login(self, credential: dict[str, Any], client: Client,
                    device_token: str | None) -> SignIn:
        """A discoverable passkey, verified by its user: the whole sign-in (amr webauthn)."""
        await self._limiter.check("login", client_key(client.ip))
        passkey = await self._assertions.verify(credential, "login", user_id=None,
                                                require_uv=True)
        user = await self._users.by_id(passkey.user_id)
        if user is None or not user.is_active:
            raise InvalidCredentials()
        if self._s.auth.require_email_verification and not user.email_verified:
            raise EmailNotVerified()
        device = self._sessions.known_device(device_token, user.id)
        return await self._sessions.signed_in(
            cached(user), client, device, device_token,
            Grant((AMR,), int(self._clock())), await self._mfa.factors(user.id))

    async def mfa_options(self, mfa_token: str, client: Client) -> dict[str, Any]:
        """For the second step of a sign-in: the pending user's passkeys."""
        await self._limiter.check("login", client_key(client.ip))
        pending = await self._pending.peek(mfa_token)
        if pending is None:
            raise MfaTokenInvalid()
        return await self._assertions.options(
            mfa_purpose(mfa_token), await self._store.of_user(pending.user_id),
            user_verification=UserVerificationRequirement.PREFERRED)

    async def reauth_options(self, caller: Caller, client: Client) -> dict[str, Any]:
        await self._limiter.check("login", client_key(client.ip))
        return await self._assertions.options(
            reauth_purpose(caller.user.id), await self._store.of_user(caller.user.id),
            user_verification=UserVerificationRequirement.PREFERRED)

    async def _alert(self, caller: Caller, kind: str) -> None:
        await self._alerts.send(caller.user, kind, f"When: {alert_time(self._clock())}.")


def mfa_purpose(mfa_token: str) -> str:
    return f"mfa:{digest(mfa_token)}"


def reauth_purpose(user_id: int) -> str:
    return f"reauth:{user_id}"

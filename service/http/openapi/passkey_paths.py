"""The passkeys' schemas and paths (WebAuthn): registration, the list, sign-in without a
username, the options for the second step and for step-up, and dropping the password."""

from __future__ import annotations

from service.config import Settings
from service.http.inputs import MFA_TOKEN_MAX, PASSKEY_NAME_MAX
from service.http.openapi.build import (
    AUTH,
    UTC_TIME,
    Json,
    obj,
    operation,
    ref,
    response,
    string,
    token_response,
)
from service.http.openapi.notes import throttle

CREDENTIAL = {"type": "object", "description": "The browser's PublicKeyCredential as JSON "
              "(`credential.toJSON()`: `id`, `rawId`, `type`, `response`, binary fields "
              "base64url)."}
REASONS = ("`challenge_invalid`, `wrong_origin`, `wrong_rp_id`, `user_verification_missing`, "
           "`unknown_credential`, `bad_signature`, `sign_count_regressed` or `malformed`")


def passkey_schemas(s: Settings) -> Json:
    passkey = {
        "id": string("The credential id (base64url)."),
        "name": string(maxLength=PASSKEY_NAME_MAX), "created": string(UTC_TIME,
                                                                     format="date-time"),
        "last_used": {"type": ["string", "null"], "format": "date-time"},
        "transports": {"type": "array", "items": string()},
        "backup_eligible": {"type": "boolean", "description": "A synced (multi-device) passkey."},
        "backup_state": {"type": "boolean", "description": "Backed up now."},
        "discoverable": {"type": ["boolean", "null"], "description": "Signs in without a "
                         "username (null: the browser did not say)."},
    }
    return {
        "Passkey": obj(passkey, list(passkey)),
        "PasskeyList": {"type": "array", "items": ref("schemas", "Passkey")},
        "PublicKeyOptions": obj({"publicKey": {
            "type": "object", "description": "WebAuthn options in their JSON form, for "
            "`PublicKeyCredential.parseCreationOptionsFromJSON()` / "
            "`parseRequestOptionsFromJSON()`; the challenge is single use, 300 s."}},
            ["publicKey"]),
        "PasskeyRegisterRequest": obj({"credential": CREDENTIAL,
                                       "name": string(maxLength=PASSKEY_NAME_MAX)},
                                      ["credential"]),
        "PasskeyRegistered": obj({
            "credential": ref("schemas", "Passkey"),
            "recovery_codes": {"type": "array", "items": string(), "description": "Ten, "
                               "shown once, when this is the account's first factor; else "
                               "empty."},
            "access": string("A new access token: `amr` adds `webauthn`, no enrolment "
                             "`scope`; `auth_time` as it was."),
        }, ["credential", "recovery_codes", "access"]),
        "PasskeyRenameRequest": obj({"name": string(minLength=1,
                                                    maxLength=PASSKEY_NAME_MAX)}, ["name"]),
        "PasskeyLoginRequest": obj({"credential": CREDENTIAL}, ["credential"]),
        "MfaPasskeyOptionsRequest": obj({"mfa_token": string(minLength=1,
                                                             maxLength=MFA_TOKEN_MAX)},
                                        ["mfa_token"]),
    }


def passkey_paths(s: Settings) -> Json:
    bearer = ("BearerUnauthorized", "ServiceUnavailable")
    note, too_many = throttle(s, "login", None)
    options = {"200": response("The options.", ref("schemas", "PublicKeyOptions"))}
    key_id = [{"name": "id", "in": "path", "required": True, "schema": string()}]
    return {
        AUTH + "webauthn/register/options/": {"post": operation(
            "passkeyRegisterOptions", "Start adding a passkey",
            "For `navigator.credentials.create()`: discoverable credentials and user "
            "verification preferred, the caller's passkeys excluded. Wants a sign-in or "
            f"`reauth/` within {s.mfa.step_up_max_age} s.", options,
            errors=("StepUpRequired", *bearer), bearer=True, tag="passkeys")},
        AUTH + "webauthn/register/": {"post": operation(
            "passkeyRegister", "Add a passkey",
            "The browser's answer to the options. Checked for the challenge (this user's, "
            "once), origin and RP id; a refusal is a 400 on `credential`. The account's "
            "first factor also gets its recovery codes. Mailed to the user.",
            {"201": token_response("The passkey, and a new access token.",
                                   "PasskeyRegistered")},
            body="PasskeyRegisterRequest", errors=("BadRequest", "StepUpRequired", *bearer),
            bearer=True, tag="passkeys")},
        AUTH + "webauthn/credentials/": {"get": operation(
            "listPasskeys", "My passkeys", "Oldest first.",
            {"200": response("The passkeys.", ref("schemas", "PasskeyList"))},
            errors=bearer, bearer=True, tag="passkeys")},
        AUTH + "webauthn/credentials/{id}/": {
            "patch": {**operation(
                "renamePasskey", "Rename a passkey", "Another user's id is a 404.",
                {"200": response("The passkey.", ref("schemas", "Passkey"))},
                body="PasskeyRenameRequest", errors=("BadRequest", "NotFound", *bearer),
                bearer=True, tag="passkeys"), "parameters": key_id},
            "delete": {**operation(
                "deletePasskey", "Remove a passkey",
                "Step-up for accounts with a second factor. The last strong factor of a "
                "passwordless account (two passkeys, or one and unused recovery codes, must "
                "stay) cannot go: 400 `non_field_errors`. Mailed to the user.",
                {"204": response("No Content. The body is empty.")},
                errors=("BadRequest", "NotFound", "StepUpRequired", *bearer), bearer=True,
                tag="passkeys"), "parameters": key_id}},
        AUTH + "webauthn/login/options/": {"post": operation(
            "passkeyLoginOptions", "Start signing in with a passkey",
            "No account named: for a discoverable passkey, user verification required. With "
            "`mediation: \"conditional\"` the browser offers it in the username field's "
            "autofill. Every sign-in page load may ask: it spends no login budget.", options,
            errors=("ServiceUnavailable",), tag="passkeys")},
        AUTH + "webauthn/login/": {"post": operation(
            "passkeyLogin", "Sign in with a passkey",
            "The whole sign-in, no password: the `login/` answer, tokens with `amr: "
            f"[\"webauthn\"]`. A refused assertion is a 401 `webauthn_failed` with `reason` "
            f"{REASONS}." + note,
            {"200": token_response("The user and a token pair, as `login/` answers.",
                                   "LoginResponse")},
            body="PasskeyLoginRequest",
            errors=("BadRequest", "PasskeyRefused", "EmailNotVerified", *too_many,
                    "ServiceUnavailable"), tag="passkeys")},
        AUTH + "login/mfa/webauthn/options/": {"post": operation(
            "mfaPasskeyOptions", "Options for the second step with a passkey",
            "For the pending sign-in's account: its passkeys. Spends no attempt; a dead "
            "`mfa_token` is a 401 `mfa_token_invalid`." + note, options,
            body="MfaPasskeyOptionsRequest",
            errors=("BadRequest", "MfaRefused", *too_many, "ServiceUnavailable"),
            tag="passkeys")},
        AUTH + "reauth/webauthn/options/": {"post": operation(
            "reauthPasskeyOptions", "Options for step-up with a passkey",
            "Then `reauth/` with `method: \"webauthn\"` and the credential." + note, options,
            errors=(*too_many, *bearer), bearer=True, tag="passkeys")},
        AUTH + "password/": {"delete": operation(
            "removePassword", "Sign in with passkeys only",
            "Removes the password when the account has two passkeys, or one and unused "
            "recovery codes (else 400 `non_field_errors`); step-up. A password reset by email "
            "sets one again, keeping the passkeys. Mailed to the user.",
            {"204": response("No Content. The body is empty.")},
            errors=("BadRequest", "StepUpRequired", *bearer), bearer=True, tag="passkeys")},
    }

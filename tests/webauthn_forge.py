"""A software authenticator for the API tests: real P-256 keys and real WebAuthn structures
(CBOR attestation, authenticator data, ECDSA signatures over what the spec says), so the
server's checks run on genuine input; and, on demand, the assertions a browser would never
send (another origin, another RP id, a reused challenge, a count going backwards, no user
verification, a broken signature). The browser tests use Chromium's virtual authenticator."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    def __init__(self, rp_id: str, origin: str, *, resident: bool = True,
                 user_verifying: bool = True) -> None:
        self.rp_id = rp_id
        self.origin = origin
        self.resident = resident
        self.user_verifying = user_verifying
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.sign_count = 0
        self.user_handle: str | None = None

    @property
    def id(self) -> str:
        return b64(self.credential_id)

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    def create(self, options: dict[str, Any], *, credential_id: bytes | None = None,
               cose_key: bytes | None = None, transports: list[str] | None = None,
               client_data: bytes | None = None) -> dict[str, Any]:
        """navigator.credentials.create() for `options` (the API's `publicKey`), or a forgery
        of one: another id inside the attestation than the one named, a key that is no key,
        any transports, any client data."""
        if client_data is None:
            client_data = json.dumps({"type": "webauthn.create",
                                      "challenge": options["challenge"],
                                      "origin": self.origin, "crossOrigin": False}).encode()
        attested = self.credential_id if credential_id is None else credential_id
        flags = UP | AT | (UV if self.user_verifying else 0)
        auth_data = (hashlib.sha256(options["rp"]["id"].encode()).digest() + bytes([flags])
                     + self.sign_count.to_bytes(4, "big") + bytes(16)
                     + len(attested).to_bytes(2, "big") + attested
                     + (self._cose_key() if cose_key is None else cose_key))
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.user_handle = options["user"]["id"]
        named = transports if transports is not None else [
            "internal" if self.resident else "usb"]
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "response": {"clientDataJSON": b64(client_data),
                             "attestationObject": b64(attestation), "transports": named},
                "authenticatorAttachment": "platform" if self.resident else "cross-platform",
                "clientExtensionResults": {"credProps": {"rk": self.resident}}}

    def get(self, options: dict[str, Any], *, origin: str | None = None,
            rp_id: str | None = None, verified: bool | None = None,
            sign_count: int | None = None, challenge: str | None = None,
            kind: str = "webauthn.get", signed: bool = True,
            client_data: bytes | None = None) -> dict[str, Any]:
        """navigator.credentials.get() for `options`, or a forgery of one (the keywords;
        `signed=False`: a probe by someone who has only the credential id)."""
        if sign_count is None:
            self.sign_count += 1
            sign_count = self.sign_count
        if client_data is None:
            client_data = json.dumps({"type": kind,
                                      "challenge": challenge or options["challenge"],
                                      "origin": origin or self.origin}).encode()
        uv = self.user_verifying if verified is None else verified
        auth_data = (hashlib.sha256((rp_id or self.rp_id).encode()).digest()
                     + bytes([UP | (UV if uv else 0)]) + sign_count.to_bytes(4, "big"))
        signature = (self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                   ec.ECDSA(hashes.SHA256())) if signed
                     else bytes.fromhex("3006020101020101"))
        response: dict[str, Any] = {"clientDataJSON": b64(client_data),
                                    "authenticatorData": b64(auth_data),
                                    "signature": b64(signature)}
        if self.resident and self.user_handle:
            response["userHandle"] = self.user_handle
        return {"id": self.id, "rawId": self.id, "type": "public-key", "response": response,
                "clientExtensionResults": {}}

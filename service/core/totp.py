"""TOTP (RFC 6238) through pyotp: new secrets, the otpauth:// URI and its QR code, and which
time step a code belongs to. Pure: the clock is passed in; spending a step (so a code is
accepted once) is the store's conditional UPDATE (store/mfa.py)."""

from __future__ import annotations

import hmac
import io

import pyotp
import segno

PERIOD = 30
DIGITS = 6
# RFC 6238 5.2: one step either side, for a phone's clock and the time it takes to type.
SKEW_STEPS = 1


def new_secret() -> str:
    """160 random bits in base32, RFC 4226's recommended length."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as a QR code, a standalone SVG document (the pages show it as an image)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False,
                                    svgns=True, title="QR code for your authenticator app")
    return out.getvalue().decode()


def normalize(code: str) -> str:
    """What people type: digits, maybe with spaces ("123 456")."""
    return "".join(code.split())


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step within the skew window whose code `code` is, or None. Every candidate
    is compared, in constant time, so the answer's timing tells nothing of which matched."""
    code = normalize(code)
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = int(now) // PERIOD
    found = None
    for step in range(current - SKEW_STEPS, current + SKEW_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and found is None:
            found = step
    return found

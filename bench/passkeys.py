"""What a passkey costs (issue 14): CPU per assertion verification, in process, on one core.

  verify      py_webauthn's verify_authentication_response on a parsed assertion: the ECDSA
              P-256 signature and its checks, nothing of ours
  checks      that plus everything Assertions.verify does without a store: parsing the JSON,
              the client data and the authenticator data, origin, RP id hash, user verification
  sign-in     a whole username-less sign-in through the real core (PasskeyService.login: the
              challenge taken from Redis, the credential read and its sign count moved in
              SQLite, the session started), guards off as bench/run.py serves
  argon2      for scale: one argon2id verify with the default [passwords] parameters
Assertions are made by the tests' software authenticator (tests/webauthn_forge.py: real P-256
keys, real WebAuthn structures). The app and its stores are set up as bench/mfa.py does
(fresh migrated SQLite, the machine's Redis under a prefix of its own, deleted at the end).
Results are checked (tokens answered with amr webauthn, a replayed assertion refused), so
the benchmark can fail.
Usage: python bench/passkeys.py [--rounds 5] [--verify-ops 2000] [--signins 200]
       [--argon2-ops 10] [--redis-url redis://127.0.0.1:6379/9]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import mfa as mfa_bench  # noqa: E402
from mfa import Figure, Timer, fmt, loop_cost, rounds_of  # noqa: E402
from webauthn import verify_authentication_response  # noqa: E402
from webauthn.helpers import (  # noqa: E402
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
)
from webauthn_forge import SoftAuthenticator  # noqa: E402

from service.app import create_app  # noqa: E402
from service.config import PasswordSettings, Settings  # noqa: E402
from service.core.accounts import RegisterInput  # noqa: E402
from service.core.sessions import Client  # noqa: E402
from service.errors import PasskeyRefused  # noqa: E402

RP = "localhost"
ORIGIN = "http://localhost:8000"


def pure_figures(ops: int, rounds: int) -> list[Figure]:
    """One credential, one signed assertion: the cryptography and the parsing alone."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    key = SoftAuthenticator(RP, ORIGIN)
    key.user_handle = "aGFuZGxl"
    options = {"challenge": "Y2hhbGxlbmdlLWNoYWxsZW5nZS1jaGFsbGVuZ2U"}
    assertion = key.get(options, sign_count=1)
    cose = key._cose_key()
    parsed = parse_authentication_credential_json(assertion)
    challenge = parse_client_data_json(parsed.response.client_data_json).challenge
    rp_hash = hashlib.sha256(RP.encode()).digest()
    assert key.key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    def verify() -> None:
        verify_authentication_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=RP,
            expected_origin=[ORIGIN], credential_public_key=cose,
            credential_current_sign_count=0, require_user_verification=True)

    def checks() -> None:
        fresh = parse_authentication_credential_json(assertion)
        data = parse_client_data_json(fresh.response.client_data_json)
        auth = parse_authenticator_data(fresh.response.authenticator_data)
        assert data.origin == ORIGIN and auth.rp_id_hash == rp_hash and auth.flags.uv
        verify_authentication_response(
            credential=fresh, expected_challenge=data.challenge, expected_rp_id=RP,
            expected_origin=[ORIGIN], credential_public_key=cose,
            credential_current_sign_count=0, require_user_verification=True)

    return [loop_cost(verify, ops, rounds, "py_webauthn verify (ECDSA P-256)"),
            loop_cost(checks, ops, rounds, "assertion checks: parse + ours + verify")]


async def signin_figures(settings: Settings, rounds: int, ops: int) -> list[Figure]:
    app = create_app(settings)
    client = Client("203.0.113.9", "bench")
    async with app.router.lifespan_context(app):
        state = app.state
        signed = await state.accounts.register(RegisterInput(
            "passkeyuser", "passkeyuser@example.com", mfa_bench.PASSWORD, "", "user", {}),
            client)
        assert signed.tokens is not None
        caller = await state.authenticator.authenticate(signed.tokens.access)
        key = SoftAuthenticator(RP, ORIGIN)
        options = await state.passkeys.registration_options(caller)
        await state.passkeys.register(caller, key.create(options), "bench")

        async def sign_in(timer: Timer, check: bool) -> None:
            assertion = key.get(await state.passkeys.login_options(client))
            done = await timer.time(state.passkeys.login(assertion, client, None))
            assert done.tokens is not None
            if check:
                try:
                    await state.passkeys.login(assertion, client, None)
                except PasskeyRefused as exc:
                    assert exc.reason == "challenge_invalid"
                else:
                    raise AssertionError("a replayed assertion was accepted")

        return [await rounds_of("passkey sign-in, whole (PasskeyService.login)", rounds, ops,
                                sign_in)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--verify-ops", type=int, default=2000)
    parser.add_argument("--signins", type=int, default=200)
    parser.add_argument("--argon2-ops", type=int, default=10)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    args = parser.parse_args()
    os.sched_setaffinity(0, {mfa_bench.CORE})
    prefix = f"bench-passkeys:{os.getpid()}:"
    print(f"{datetime.date.today()} · {platform.node()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()} · pinned to core {mfa_bench.CORE}, {args.rounds} "
          "rounds, median of the rounds' means", flush=True)
    figures = pure_figures(args.verify_ops, args.rounds)
    argon = mfa_bench.argon2_figure(PasswordSettings(), args.argon2_ops, args.rounds)
    try:
        with tempfile.TemporaryDirectory(prefix="authsvc-bench-passkeys-") as tmp:
            settings: Any = mfa_bench.settings_for(Path(tmp), args.redis_url, prefix, False)
            settings = settings.replace(webauthn={"rp_id": RP, "origins": (ORIGIN,)})
            figures += asyncio.run(signin_figures(settings, args.rounds, args.signins))
    finally:
        deleted = mfa_bench.delete_prefixed(args.redis_url, prefix)
    figures.append(argon)
    print(f"(deleted {deleted} Redis keys under {prefix})")
    print("\n| operation | CPU / op | rounds' range | wall / op | ops/s (CPU) |")
    print("|---|---:|---:|---:|---:|")
    for figure in figures:
        print(figure.row())
    checks, signin = figures[1].cpu_median, figures[2].cpu_median
    print(f"\n- an assertion's checks {fmt(checks)} of CPU; a whole passkey sign-in "
          f"{fmt(signin)}, {signin / argon.cpu_median:.2f} of one argon2 verify "
          f"({fmt(argon.cpu_median)}): a passkey sign-in is {argon.cpu_median / signin:.1f}x "
          "cheaper than checking a password")


if __name__ == "__main__":
    main()

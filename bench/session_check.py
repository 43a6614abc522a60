"""What the per-request session check costs: profile GET req/s with and without it, same run.

The server (1 process) is pinned to core 0, wrk to core 1; the two variants alternate for
ROUNDS rounds on the same database and Redis, and the ratio of medians is reported.
Usage: python bench/session_check.py [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
USER = {"username": "bench", "email": "bench@example.com", "password": "bench pass phrase 1",
        "password2": "bench pass phrase 1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env.update({"AUTH_DATA_DIR": str(data), "AUTH_DATABASE_URL": f"sqlite:///{data}/auth.db",
                "AUTH_RATE_LIMIT_ENABLED": "false", "AUTH_LOCKOUT_ENABLED": "false",
                "AUTH_ALERTS_ENABLED": "false", "AUTH_AUTH_VERIFY_EMAILS": "false",
                "PYTHONPATH": str(ROOT)})
    return env


def serve(variant: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(["taskset", "-c", "0", sys.executable,
                                str(ROOT / "bench" / "serve_variant.py"), variant, str(port)],
                               env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/healthz", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("server did not start")


def wrk(url: str, token: str, seconds: int) -> tuple[float, str]:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{seconds}s",
                          "--latency", "-H", f"Authorization: Bearer {token}",
                          url + "/api/v1/auth/profile/"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(out)
    return rps, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-", dir="/tmp") as tmp:
        env = environment(Path(tmp))
        subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, check=True,
                       capture_output=True)
        process, url = serve("with", env)
        token = httpx.post(url + "/api/v1/auth/register/", json=USER).json()["access"]
        process.terminate()
        process.wait()
        results: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(args.rounds):
            for variant in ("with", "without"):
                process, url = serve(variant, env)
                try:
                    rps, p99 = wrk(url, token, args.seconds)
                finally:
                    process.terminate()
                    process.wait()
                results[variant].append(rps)
                print(f"{variant:8} {rps:9.0f} req/s  p99 {p99}", flush=True)
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        "from service.embedded_redis import stop; stop(Path(sys.argv[1]))", tmp],
                       env=env, check=False)
    with_check = statistics.median(results["with"])
    without = statistics.median(results["without"])
    print(f"median: with {with_check:.0f} req/s, without {without:.0f} req/s, "
          f"ratio {with_check / without:.3f}")


if __name__ == "__main__":
    main()

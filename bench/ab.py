"""A/B: one scenario served by two variants of the server, alternating, same run.

The server (1 process, bench/serve_variant.py) is pinned to core 0, wrk to core 1; the two
variants take turns for ROUNDS rounds on the same database and Redis, and the ratio of the
medians is reported.
  python bench/ab.py profile with without    what the per-request session check costs
  python bench/ab.py refresh with nopool     what reusing SQLite connections saves
  python bench/ab.py profile with with --b-tree ../old-checkout
                                             this tree against another commit (its own .venv)
Options: [--seconds 10] [--rounds 3] [--b-tree DIR]
"""

from __future__ import annotations

import argparse
import json
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
WRK = ROOT / "bench" / "wrk"
PREFIX = "/api/v1/auth"
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


def serve(variant: str, env: dict[str, str],
          tree: Path = ROOT) -> tuple[subprocess.Popen[bytes], str]:
    """`variant` of bench/serve_variant.py, from `tree` (a checkout with its own .venv)."""
    port = free_port()
    python = sys.executable if tree == ROOT else str(tree / ".venv" / "bin" / "python")
    process = subprocess.Popen(["taskset", "-c", "0", python,
                                str(tree / "bench" / "serve_variant.py"), variant, str(port)],
                               env={**env, "PYTHONPATH": str(tree)},
                               cwd=tree)  # its own config.toml: sections differ by version
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):  # 30 s: the first start also starts the embedded Valkey
        try:
            httpx.get(url + "/healthz", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("server did not start")


def wrk_command(scenario: str, url: str, tokens: dict[str, str], tmp: Path) -> list[str]:
    if scenario == "profile":
        return ["-H", f"Authorization: Bearer {tokens['access']}", url + PREFIX + "/profile/"]
    bodies = tmp / "refresh"
    bodies.write_text(json.dumps({"refresh": tokens["refresh"]}) + "\n")
    return ["-s", str(WRK / "post_lines.lua"), url + PREFIX + "/token/refresh/", "--",
            str(bodies)]


def wrk(args: list[str], seconds: int) -> tuple[float, str]:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{seconds}s",
                          "--latency", *args], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(out)
    return rps, p99


def run_rounds(args: argparse.Namespace, trees: dict[str, Path], env: dict[str, str],
               tmp: Path) -> dict[str, list[float]]:
    """Register the bench user, then serve A and B in turns under wrk; req/s per side."""
    subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, check=True,
                   capture_output=True)
    process, url = serve("with", env)
    tokens = httpx.post(url + PREFIX + "/register/", json=USER).json()
    process.terminate()
    process.wait()
    results: dict[str, list[float]] = {"A": [], "B": []}
    for _ in range(args.rounds):
        for side, variant in (("A", args.a), ("B", args.b)):
            process, url = serve(variant, env, trees[side])
            try:
                rps, p99 = wrk(wrk_command(args.scenario, url, tokens, tmp), args.seconds)
            finally:
                process.terminate()
                process.wait()
            results[side].append(rps)
            print(f"{side} {variant:8} {rps:9.0f} req/s  p99 {p99}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=("profile", "refresh"))
    parser.add_argument("a", help="variant A (bench/serve_variant.py)")
    parser.add_argument("b", help="variant B")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--b-tree", type=Path, default=ROOT,
                        help="serve B from this checkout (same database and Redis: the schema "
                             "and key names must match)")
    args = parser.parse_args()
    trees = {"A": ROOT, "B": args.b_tree.resolve()}
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-", dir="/tmp") as tmp:
        env = environment(Path(tmp))
        try:
            results = run_rounds(args, trees, env, Path(tmp))
        finally:  # whatever failed: the embedded Valkey must not outlive its directory
            subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                            "from service.local.embedded_redis import stop; "
                            "stop(Path(sys.argv[1]))", tmp], env=env, check=False)
    a, b = statistics.median(results["A"]), statistics.median(results["B"])
    where = "" if trees["B"] == ROOT else f" ({trees['B']})"
    print(f"{args.scenario}, median: A {args.a} {a:.0f} req/s, B {args.b}{where} {b:.0f} req/s, "
          f"ratio A/B {a / b:.3f}")

if __name__ == "__main__":
    main()

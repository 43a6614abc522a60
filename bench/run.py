"""The benchmark suite: authsvc, the bare-Starlette floor and the peers, in one run.

Every server is 1 process pinned to core 0; wrk (scripts in bench/wrk/) runs on core 1, and
so does the embedded Valkey: a backing service, on another machine in production.
Throughputs are shown as ratios of figures measured in this same run. See bench/README.md.
Usage: python bench/run.py [--seconds 10] [--connections 32] [--scenarios ...] [--no-peers]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from ab import environment, free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from service.local import embedded_redis  # noqa: E402

BENCH = ROOT / "bench"
WRK = BENCH / "wrk"
PEERS = ROOT.parent / "shared" / "peers"
PREFIX = "/api/v1/auth"
SCENARIOS = ("profile_get", "refresh", "login", "login_plus_profile", "register")
PASSWORD = "bench pass phrase 1"
USERS, PEER_USERS = 200, 12
PROBE_CONNECTIONS = 4  # the profile GETs that measure p99 while logins saturate the CPU
HASHES = 80
PEER_START_TIMEOUT = 900.0  # a peer's first start builds its virtualenv

Spec = tuple[str, str, list[str]]  # path, wrk script, script arguments


@dataclass
class Result:
    target: str
    scenario: str
    rps: float
    p50_us: int
    p99_us: int
    errors: int


class Processes:
    """Everything this run starts, each in its own session so it can be stopped as a group."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=log,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
                process.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.running)):
            self.stop(process)


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"not answering after {timeout:.0f} s")


def vmrss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wrk_cmd(url: str, spec: Spec, seconds: int, connections: int) -> list[str]:
    path, script, args = spec
    return ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
            "--timeout", "10s", "-s", str(WRK / script), url + path, "--", *args]


def parse(target: str, scenario: str, out: str) -> Result:
    line = next((row for row in out.splitlines() if row.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary for {target} {scenario}:\n{out}")
    s = json.loads(line[6:])
    return Result(target, scenario, s["requests"] / (s["duration_us"] / 1e6), s["p50_us"],
                  s["p99_us"], s["status_errors"] + s["socket_errors"] + s["timeouts"])


def drive(target: str, url: str, specs: dict[str, Spec], scenario: str, seconds: int,
          connections: int) -> list[Result]:
    """One scenario; login_plus_profile runs two wrk at once and yields both halves."""
    if scenario != "login_plus_profile":
        out = subprocess.run(wrk_cmd(url, specs[scenario], seconds, connections),
                             capture_output=True, text=True, check=True).stdout
        return [parse(target, scenario, out)]
    pair = [subprocess.Popen(wrk_cmd(url, specs[name], seconds, c), stdout=subprocess.PIPE,
                             text=True)
            for name, c in (("login", connections), ("profile_get", PROBE_CONNECTIONS))]
    outs = [p.communicate()[0] for p in pair]
    return [parse(target, "login_plus_profile (profile)", outs[1]),
            parse(target, "login_plus_profile (login)", outs[0])]


def run_target(target: str, url: str, specs: dict[str, Spec], scenarios: list[str],
               args: argparse.Namespace) -> list[Result]:
    first = next(iter(specs.values()))
    subprocess.run(wrk_cmd(url, first, 1, args.connections), capture_output=True, check=True)
    results = []
    for scenario in scenarios:
        if scenario in specs or scenario == "login_plus_profile":
            for result in drive(target, url, specs, scenario, args.seconds, args.connections):
                print(f"  {target:14} {result.scenario:30} {result.rps:9.1f} req/s  "
                      f"p99 {fmt_us(result.p99_us)}  errors {result.errors}", flush=True)
                results.append(result)
    return results


# --- users and tokens -----------------------------------------------------------------------

async def register_all(url: str, bodies: list[dict[str, str]]) -> list[dict[str, Any]]:
    """POST every body to register/, 4 at a time (hashing is slow by design)."""
    gate = asyncio.Semaphore(4)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def one(body: dict[str, str]) -> dict[str, Any]:
            async with gate:
                response = await client.post(f"{PREFIX}/register/", json=body)
                response.raise_for_status()
                return dict(response.json())
        return list(await asyncio.gather(*(one(b) for b in bodies)))


def api_md_files(url: str, tag: str, count: int, files: Path) -> None:
    """Register `count` users on an API.md server; write their tokens and request bodies."""
    names = [f"u{tag}n{i}" for i in range(count)]
    users = asyncio.run(register_all(url, [
        {"username": n, "email": f"{n}@example.com", "password": PASSWORD,
         "password2": PASSWORD} for n in names]))
    files.mkdir(parents=True, exist_ok=True)
    write(files / "tokens", [u["access"] for u in users])
    write(files / "refresh", [json.dumps({"refresh": u["refresh"]}) for u in users])
    write(files / "login", [json.dumps({"username_or_email": n, "password": PASSWORD})
                            for n in names])
    write(files / "register", [json.dumps({"username": "{id}", "email": "{id}@example.com",
                                           "password": PASSWORD, "password2": PASSWORD})])


def api_md_specs(files: Path, tag: str) -> dict[str, Spec]:
    return {"profile_get": (f"{PREFIX}/profile/", "bearer_get.lua", [str(files / "tokens")]),
            "refresh": (f"{PREFIX}/token/refresh/", "post_lines.lua", [str(files / "refresh")]),
            "login": (f"{PREFIX}/login/", "post_lines.lua", [str(files / "login")]),
            "register": (f"{PREFIX}/register/", "register.lua",
                         [str(files / "register"), tag])}


def fastapi_users_specs(url: str, tag: str, files: Path) -> dict[str, Spec]:
    """FastAPI Users: register {email,password}, log in with a form, GET /users/me."""
    emails = [f"u{tag}n{i}@example.com" for i in range(PEER_USERS)]
    tokens = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for email in emails:
            client.post("/auth/register", json={"email": email, "password": PASSWORD}
                        ).raise_for_status()
            response = client.post("/auth/jwt/login", data={"username": email,
                                                             "password": PASSWORD})
            tokens.append(response.raise_for_status().json()["access_token"])
    files.mkdir(parents=True, exist_ok=True)
    write(files / "tokens", tokens)
    write(files / "login", [urlencode({"username": e, "password": PASSWORD})
                            for e in emails])
    return {"profile_get": ("/users/me", "bearer_get.lua", [str(files / "tokens")]),
            "login": ("/auth/jwt/login", "post_lines.lua",
                      [str(files / "login"), "application/x-www-form-urlencoded"])}


def write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


# --- the parts of the run -------------------------------------------------------------------

ARGON2 = """
import json, sys, time, argon2
from service.config import load_settings
p = load_settings().passwords
h = argon2.PasswordHasher(time_cost=p.time_cost, memory_cost=p.memory_cost,
                          parallelism=p.parallelism, type=argon2.Type.ID)
h.hash("warm up")
start = time.perf_counter()
for i in range(int(sys.argv[1])):
    h.hash(f"bench pass phrase {i}")
print(json.dumps({"rate": int(sys.argv[1]) / (time.perf_counter() - start),
                  "params": f"time_cost {p.time_cost}, memory_cost {p.memory_cost}, "
                            f"parallelism {p.parallelism}"}))
"""


def argon2_limit(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", ARGON2, str(HASHES)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out))


def argon2_around(env: dict[str, str], during: Any) -> tuple[dict[str, Any], Any]:
    """The argon2 limit measured just before and just after `during()` (the authsvc
    scenarios), averaged: a neighbour's load on this shared machine moves it by several %."""
    before = argon2_limit(env)
    print(f"argon2: {before['rate']:.1f} hashes/s ({before['params']})", flush=True)
    result = during()
    after = argon2_limit(env)
    print(f"argon2 again: {after['rate']:.1f} hashes/s", flush=True)
    return {"rate": (before["rate"] + after["rate"]) / 2, "params": before["params"],
            "before": before["rate"], "after": after["rate"]}, result


def run_authsvc(procs: Processes, env: dict[str, str], tmp: Path, tag: str,
                args: argparse.Namespace) -> tuple[list[Result], dict[str, float], int]:
    worker = procs.start("worker", ["taskset", "-c", "0", sys.executable, "-m", "service.cli",
                                    "worker"], env)
    port = free_port()
    server = procs.start("authsvc", ["taskset", "-c", "0", sys.executable,
                                     str(BENCH / "serve_variant.py"), "with", str(port)], env)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/healthz", server, 60)
    print(f"registering {USERS} users ...", flush=True)
    api_md_files(url, tag, USERS, tmp / "authsvc")
    specs = api_md_specs(tmp / "authsvc", tag)
    results = run_target("authsvc", url, specs, args.scenarios, args)
    memory = {"authsvc server": vmrss_mb(server.pid), "authsvc worker": vmrss_mb(worker.pid)}
    procs.stop(server)
    procs.stop(worker)
    tracebacks = (procs.logs / "authsvc.log").read_text(errors="replace").count("Traceback")
    return results, memory, tracebacks


def run_floor(procs: Processes, env: dict[str, str], tmp: Path, tag: str,
              args: argparse.Namespace) -> tuple[list[Result], float]:
    port = free_port()
    server = procs.start("floor", ["taskset", "-c", "0", sys.executable,
                                   str(BENCH / "floor.py"), str(port)], env)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/healthz", server, 60)
    specs = api_md_specs(tmp / "authsvc", tag)
    scenarios = [s for s in args.scenarios if s != "login_plus_profile"]
    results = run_target("floor", url, specs, scenarios, args)
    rss = vmrss_mb(server.pid)
    procs.stop(server)
    return results, rss


def start_redis(tmp: Path) -> None:
    """The run's embedded Valkey, pinned to core 1 beside wrk. Started by the API instead, it
    would inherit the server's pinning and bill Redis's own work to the core under test."""
    embedded_redis.ensure_running(tmp)
    pid = int((tmp / "redis.pid").read_text())
    os.sched_setaffinity(pid, {1})


def redis_for_peers(tmp: Path) -> str:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            if conn.recv(16).startswith(b"+PONG"):
                return "redis://127.0.0.1:6379/12"
    except OSError:
        pass
    return embedded_redis.ensure_running(tmp) + "?db=12"


def run_peers(procs: Processes, tmp: Path, tag: str, args: argparse.Namespace
              ) -> tuple[list[Result], list[str]]:
    results: list[Result] = []
    skipped: list[str] = []
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    for name in ("django_ref", "fastapi_users"):
        start = PEERS / name / "start.sh"
        if not start.exists():
            skipped.append(f"{name}: {start} not present")
            continue
        port = free_port()
        env = {**base, "PORT": str(port), "AUTH_REDIS_URL": redis_for_peers(tmp),
               "AUTH_REDIS_PREFIX": f"bench{tag}"}
        url = f"http://127.0.0.1:{port}"
        print(f"starting peer {name} (its first start builds a venv) ...", flush=True)
        process = procs.start(name, ["taskset", "-c", "0", str(start)], env)
        try:
            wait_ready(url + "/", process, PEER_START_TIMEOUT)
            files = tmp / name
            if name == "django_ref":
                api_md_files(url, tag, PEER_USERS, files)
                specs = api_md_specs(files, tag)
                del specs["register"]
            else:
                specs = fastapi_users_specs(url, tag, files)
            scenarios = [s for s in ("profile_get", "refresh", "login") if s in args.scenarios]
            results += run_target(name, url, specs, scenarios, args)
        except (RuntimeError, httpx.HTTPError, subprocess.CalledProcessError) as e:
            tail = (procs.logs / f"{name}.log").read_text(errors="replace")[-400:]
            skipped.append(f"{name}: {e} (log tail: {tail.strip()!r})")
            print(f"  skipped {name}: {e}", flush=True)
        finally:
            procs.stop(process)
    return results, skipped


# --- the report -----------------------------------------------------------------------------

def fmt_us(us: int) -> str:
    return f"{us / 1000:.1f} ms" if us >= 1000 else f"{us} µs"


def machine() -> str:
    model = next((row.split(":", 1)[1].strip() for row in
                  Path("/proc/cpuinfo").read_text().splitlines() if row.startswith("model name")),
                 platform.machine())
    python = platform.python_version()
    return f"{socket.gethostname()}, {os.cpu_count()} cores ({model}), Python {python}"


def report(results: list[Result], argon2: dict[str, Any], memory: dict[str, float],
           tracebacks: int, skipped: list[str], args: argparse.Namespace) -> str:
    floor = {r.scenario: r.rps for r in results if r.target == "floor"}
    rps = {(r.target, r.scenario): r.rps for r in results}
    lines = [f"{datetime.date.today()} · {machine()} · {args.seconds} s per scenario, "
             f"{args.connections} connections (login_plus_profile: {args.connections} login + "
             f"{PROBE_CONNECTIONS} profile), server on core 0, wrk on core 1", "",
             "| target | scenario | req/s | p50 | p99 | errors | vs floor |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        ratio = f"{r.rps / floor[r.scenario]:.3f}" if r.target != "floor" and \
            r.scenario in floor else "–"
        lines.append(f"| {r.target} | {r.scenario} | {r.rps:,.0f} | {fmt_us(r.p50_us)} | "
                     f"{fmt_us(r.p99_us)} | {r.errors} | {ratio} |")
    lines.append("")
    limit = argon2["rate"]
    lines.append(f"- argon2 limit ({argon2['params']}): {limit:.1f} hashes/s on one core "
                 f"(mean of {argon2['before']:.1f} before and {argon2['after']:.1f} after the "
                 f"authsvc scenarios)")
    if ("authsvc", "login") in rps:
        lines.append(f"- authsvc login: {rps['authsvc', 'login']:.1f} req/s = "
                     f"{rps['authsvc', 'login'] / limit:.2f} of the argon2 limit")
    lines += [f"- VmRSS after the run, {name}: {mb:.1f} MB" for name, mb in memory.items()]
    lines.append(f"- tracebacks in the authsvc server log: {tracebacks}")
    for peer in ("django_ref", "fastapi_users"):
        parts = [f"{s} {rps['authsvc', s] / rps[peer, s]:.1f}x" for s in
                 ("profile_get", "refresh", "login") if (peer, s) in rps and ("authsvc", s) in rps]
        if parts:
            lines.append(f"- authsvc / {peer}: " + ", ".join(parts))
    lines += [f"- peer skipped: {reason}" for reason in skipped]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    args.scenarios = [s for s in SCENARIOS if s in args.scenarios]
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        sys.exit("bench: needs wrk and taskset (Debian: apt-get install wrk util-linux)")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("bench: needs 2 cores, one for the server and one for wrk")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tag = format(int(time.time()), "x")
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-", dir="/tmp") as name:
        tmp = Path(name)
        procs = Processes(tmp)
        env = environment(tmp)
        try:
            subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env,
                           check=True, capture_output=True)
            start_redis(tmp)
            argon2, (results, memory, tracebacks) = argon2_around(
                env, lambda: run_authsvc(procs, env, tmp, tag, args))
            floor, memory["floor server"] = run_floor(procs, env, tmp, tag, args)
            peers, skipped = run_peers(procs, tmp, tag, args) if args.peers else ([], [])
        finally:
            procs.stop_all()
            embedded_redis.stop(tmp)
    text = report(results + floor + peers, argon2, memory, tracebacks, skipped, args)
    print("\n" + text)
    (BENCH / "results").mkdir(exist_ok=True)
    (BENCH / "results" / "latest.md").write_text("# bench/run.py\n\n" + text)


if __name__ == "__main__":
    main()

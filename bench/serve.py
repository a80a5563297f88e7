"""`gt serve` under a flood: accepted requests per second and p99 time to a 202 with 20
requests in flight, and what the flood costs a Witness patrol of 50 agents.

Run: .venv/bin/python bench/serve.py
Targets: p99 time to a 202 <= 50 ms; a patrol during the flood at most 10% slower than
without it.

Floors, measured in the same run: the same 20 clients on `GET /healthz` (HTTP and the
event loop, no ledger write) for the request figures; the patrol without a flood for the
patrol. The flood's clients are a separate process at nice 10 (they stand for senders on
other machines); the server runs at its own nice 5, the patrol at 0, as in a town.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _town import bench_town, machine  # noqa: E402

CONCURRENCY = 20
FLOOD_SECONDS = 12.0
PATROLS = 30
AGENTS = 50
TOML = """
[agents.idler]
command = ["tail", "-f", "/dev/null", "{prompt_file}"]
prompt = "arg"
ready_delay = "0.1s"

[triggers.flood]
rig = "app"
kind = "webhook"
title = "Alert {{bodyJson.id}}"
prompt = "Handle this alert: {{bodyJson}}"
secret_env = "FLOOD_SECRET"
max_in_flight = 1000000
"""


# -- the flood (run in its own process) ----------------------------------------------------


async def _client(host: str, port: int, request: bytes, end: float, latencies: list[float], codes: dict[int, int]) -> None:
    """One keep-alive HTTP/1.1 connection sending ``request`` back to back until ``end``:
    a few lines of asyncio instead of an HTTP library, so the client costs little CPU."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < end:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            codes[status] = codes.get(status, 0) + 1
    finally:
        writer.close()


def flood(host: str, port: int, method: str, path: str, seconds: float, secret: str) -> None:
    body = b'{"id": 1234, "package": "urllib3", "severity": "high"}'
    if method == "POST":
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"X-Webhook-Secret: {secret}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        request = head + body
    else:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    latencies: list[float] = []
    codes: dict[int, int] = {}

    async def main() -> float:
        started = time.monotonic()
        end = started + seconds
        await asyncio.gather(*[_client(host, port, request, end, latencies, codes) for _ in range(CONCURRENCY)])
        return time.monotonic() - started

    took = asyncio.run(main())
    latencies.sort()
    print(json.dumps({
        "requests": len(latencies), "seconds": took, "codes": codes,
        "p50": latencies[len(latencies) // 2], "p99": latencies[int(len(latencies) * 0.99)],
    }))


# -- the bench ---------------------------------------------------------------------------------


def start_flood(port: int, method: str, path: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--flood", str(port), method, path, str(seconds)],
        stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.nice(10),
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median_patrol(witness: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        witness.patrol()  # type: ignore[attr-defined]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    from gastown.context import Context
    from gastown.ledger import issues
    from gastown.roles.polecat import sling
    from gastown.roles.witness import Witness
    from gastown.town import Town

    from gastown.config.edit import rewrite_config, set_values

    os.environ["FLOOD_SECRET"] = "bench-secret"
    with bench_town(TOML) as town:
        config = town / "gastown.toml"
        rewrite_config(config, set_values(config.read_text(), "server", {"enabled": False, "port": 0}))
        ctx = Context(Town(town))
        for n in range(AGENTS):
            issue = issues.create(ctx.ledger, title=f"idle {n}", body="", rig="app", priority=2,
                                  prefixes=ctx.config.rig_prefixes()).id
            sling(ctx, issue, agent="idler")
        time.sleep(3)  # the starters mark them running; logs settle
        server = subprocess.Popen([sys.executable, "-m", "gastown", "serve", "--port", "0"], cwd=town,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            record_path = town / ".gastown" / "run" / "server.json"
            deadline = time.monotonic() + 60
            while not record_path.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            port = json.loads(record_path.read_text())["port"]
            from gastown.ledger.triggers import get_trigger, list_requests

            state = get_trigger(ctx.ledger.connection(), "flood")
            assert state is not None
            hook = f"/hooks/flood/{state.token}"

            witness = Witness(ctx, "app")
            witness.patrol()  # the first look reads every screen once
            quiet = median_patrol(witness, PATROLS)

            before = cpu_seconds(server.pid)
            health = start_flood(port, "GET", "/healthz", FLOOD_SECONDS / 2)
            floor = json.loads(health.communicate()[0])
            middle = cpu_seconds(server.pid)

            flooding = start_flood(port, "POST", hook, FLOOD_SECONDS)
            time.sleep(1.0)  # let the flood reach its pace
            loaded = median_patrol(witness, PATROLS)
            result = json.loads(flooding.communicate()[0])
            after = cpu_seconds(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=20)
        accepted = result["codes"].get("202", 0)
        recorded = len(list_requests(ctx.ledger.connection(), "flood", limit=10_000_000))

    rps, floor_rps = accepted / result["seconds"], floor["requests"] / floor["seconds"]
    floor_cpu = (middle - before) / max(1, floor["requests"]) * 1000
    hook_cpu = (after - middle) / max(1, result["requests"]) * 1000
    load = os.getloadavg()[0]
    print(f"machine: {machine()}; load average {load:.1f}; {CONCURRENCY} requests in flight; {AGENTS} idle agents")
    print(f"GET /healthz (floor)   {floor_rps:7.0f} req/s   p50 {floor['p50'] * 1000:6.1f} ms   "
          f"p99 {floor['p99'] * 1000:6.1f} ms   server CPU {floor_cpu:4.2f} ms/request")
    print(f"POST hook -> 202       {rps:7.0f} req/s   p50 {result['p50'] * 1000:6.1f} ms   "
          f"p99 {result['p99'] * 1000:6.1f} ms   server CPU {hook_cpu:4.2f} ms/request")
    print(f"  {rps / floor_rps:.2f}x the floor's rate, {result['p99'] / floor['p99']:.1f}x its p99, "
          f"{hook_cpu / floor_cpu:.1f}x its CPU per request   target p99 <= 50 ms")
    print(f"  answers {result['codes']}; {recorded} requests in the ledger")
    print(f"Witness patrol, {AGENTS} agents: quiet {quiet * 1000:5.1f} ms   during the flood {loaded * 1000:5.1f} ms   "
          f"{loaded / quiet:.2f}x   target <= 1.10x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--flood":
        flood("127.0.0.1", int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]),
              os.environ.get("FLOOD_SECRET", ""))
    else:
        main()

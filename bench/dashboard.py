"""The dashboard at 50 agents: the server's time per page, and what ten open pages cost.

Run: .venv/bin/python bench/dashboard.py
Targets: a page in <= 100 ms with 50 agents; the Mayor's CPU with 10 pages streaming
at most 1 percentage point above its CPU with none; ten streams cost the hub the same
reads as one.

Floors, measured in the same run: A, an HTTP round trip for a static file (the server's
fixed cost); B, A plus ``collect_status`` called directly (the data every page shows).
Pages reuse a snapshot up to two seconds old, so back-to-back requests compare with A;
the town page requested more than two seconds apart takes a fresh snapshot each time (vs B).
The Mayor is measured twice over the same window length while a writer records two
events a second, first with no page open, then with ten event streams reading.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _town import bench_town, machine

RUNTIME = """
[agents.idler]
command = ["tail", "-f", "/dev/null", "{prompt_file}"]
prompt = "arg"
ready_delay = "0.1s"
"""
AGENTS = 50
STREAMS = 10
WARM = 30  # requests per page, back to back
COLD = 8  # requests of the town page, each on a fresh snapshot (> 2 s apart)
WINDOW = 20.0  # seconds of Mayor CPU per phase


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(client: httpx.Client, path: str, n: int, pause: float = 0.0) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code)
        if pause:
            time.sleep(pause)
    return times


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"median {statistics.median(values) * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms"


def open_streams(url: str, count: int, stop: threading.Event) -> list[threading.Thread]:
    def read() -> None:
        with httpx.Client(base_url=url, timeout=httpx.Timeout(60, connect=10)) as client:
            with client.stream("GET", "/stream?view=town") as response:
                for _ in response.iter_lines():
                    if stop.is_set():
                        return

    threads = [threading.Thread(target=read, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def main() -> None:
    import subprocess

    from gastown.context import Context
    from gastown.ledger import issues
    from gastown.ledger.events import record_event
    from gastown.roles.polecat import sling
    from gastown.server.dashboard.app import create_dashboard_app
    from gastown.server.dashboard.serving import serve_in_thread
    from gastown.town import Town
    from gastown.views.status import collect_status

    with bench_town(RUNTIME) as town:
        ctx = Context(Town(town))
        polecat = None
        for n in range(AGENTS):
            issue = issues.create(ctx.ledger, title=f"idle agent {n} <b>not bold</b>", body="", rig="app",
                                  priority=2, prefixes=ctx.config.rig_prefixes()).id
            slung = sling(ctx, issue, agent="idler")
            polecat = polecat or slung.polecat
        subprocess.run([sys.executable, "-m", "gastown", "up"], cwd=town, check=True, capture_output=True)
        mayor = int((town / ".gastown" / "run" / "mayor.pid").read_text())
        time.sleep(3)
        assert len(collect_status(ctx).agents) == AGENTS

        app = create_dashboard_app(town)
        hub = app.state.hub
        with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            status_floor = []
            for _ in range(WARM):
                started = time.perf_counter()
                collect_status(ctx)
                status_floor.append(time.perf_counter() - started)
            http_floor = timed(client, "/static/favicon.svg", WARM)
            pages = {path: timed(client, path, WARM) for path in
                     ("/", f"/agents/app/{polecat}", "/mq", "/events", "/api/status")}
            cold = timed(client, "/", COLD, pause=2.1)

            writing = threading.Event()

            def writer() -> None:
                while not writing.is_set():
                    with ctx.ledger.write() as conn:
                        record_event(conn, "mayor", "bench tick", now=time.time())
                    writing.wait(0.5)

            threading.Thread(target=writer, daemon=True).start()
            time.sleep(2)
            before, started = cpu_seconds(mayor), time.monotonic()
            time.sleep(WINDOW)
            idle_cpu = (cpu_seconds(mayor) - before) / (time.monotonic() - started)

            stop = threading.Event()
            open_streams(url, 1, stop)
            while hub.subscribers < 1:
                time.sleep(0.1)
            time.sleep(2)
            polls, snaps = hub.stats.event_polls, hub.stats.snapshots
            time.sleep(5)
            one = ((hub.stats.event_polls - polls) / 5, (hub.stats.snapshots - snaps) / 5)
            open_streams(url, STREAMS - 1, stop)
            deadline = time.monotonic() + 60
            while hub.subscribers < STREAMS and time.monotonic() < deadline:
                time.sleep(0.1)
            assert hub.subscribers == STREAMS, f"only {hub.subscribers} streams connected"
            time.sleep(2)
            polls, snaps = hub.stats.event_polls, hub.stats.snapshots
            before, started = cpu_seconds(mayor), time.monotonic()
            me_before = time.process_time()
            time.sleep(WINDOW)
            elapsed = time.monotonic() - started
            streams_cpu = (cpu_seconds(mayor) - before) / elapsed
            server_cpu = (time.process_time() - me_before) / elapsed
            ten = ((hub.stats.event_polls - polls) / elapsed, (hub.stats.snapshots - snaps) / elapsed)
            stop.set()
            writing.set()
        subprocess.run([sys.executable, "-m", "gastown", "down", "--timeout", "1"], cwd=town, check=False,
                       capture_output=True)

    http = statistics.median(http_floor)
    floor = http + statistics.median(status_floor)
    print(f"machine: {machine()}; {AGENTS} agents, median of {WARM} requests per page")
    print(f"floor A: HTTP round trip (static file)   {ms(http_floor)}")
    print(f"floor B: A + collect_status() direct     {floor * 1000:6.1f} ms (collect_status {ms(status_floor)})")
    for path, times in pages.items():
        label = "/agents/app/<polecat>" if path.startswith("/agents/") else path
        print(f"page {label:<35} {ms(times)}   {statistics.median(times) / http:4.1f}x A   target <= 100 ms")
    print(f"page / on a fresh snapshot each time     {ms(cold)}   {statistics.median(cold) / floor:4.1f}x B   "
          "target <= 100 ms")
    print(f"hub reads, 1 stream:   {one[0]:5.1f} event polls/s  {one[1]:4.2f} snapshots/s")
    print(f"hub reads, {STREAMS} streams:  {ten[0]:5.1f} event polls/s  {ten[1]:4.2f} snapshots/s   "
          f"({ten[0] / max(one[0], 1e-9):.2f}x the reads of one)")
    delta = (streams_cpu - idle_cpu) * 100
    print(f"Mayor CPU, no page open:       {idle_cpu * 100:5.2f}% of one core over {WINDOW:.0f}s")
    print(f"Mayor CPU, {STREAMS} pages streaming: {streams_cpu * 100:5.2f}%   delta {delta:+.2f} pp   target <= +1 pp")
    print(f"dashboard server + {STREAMS} readers (this process): {server_cpu * 100:5.2f}% of one core")


if __name__ == "__main__":
    main()

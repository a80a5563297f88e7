"""What hosts cost: a patrol's snapshot over 50 agents on two SSH hosts, and a remote spawn.

Run: .venv/bin/python bench/hosts.py   (needs openssh-server; runs as a user that may
`unshare --mount`, as the tests do: two real sshds on 127.0.0.1, see tests/sshd.py)

Figures, each against a floor measured in the same run:
- snapshot round trips per host for 25 agents each (target: 1 per host);
- the snapshot of both hosts (taken in parallel, as a patrol of two rigs would) vs the
  local snapshot of 50 agents, and vs the floor of one bare `ssh host true` per host
  over the same multiplexed connection;
- a Witness patrol's gather over those 50 remote agents (ledger rows as if slung) vs the
  same gather over 50 local agents (target: within 2x, one round trip per host);
- `sling()` to an agent running on a host (placement, claim, mirror, worktree, token,
  launch file, window; the town's server up) vs the same floor;
- a remote spawn (push the target to the mirror, worktree, launch file, window) vs the
  same steps by hand over the same connection (git push, `git worktree add`, `cat >`
  the launch file, `tmux new-window`).
"""

from __future__ import annotations

import shlex
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _town import bench_town, machine  # noqa: E402

from tests.helpers import set_config  # noqa: E402
from tests.sshd import SshServer  # noqa: E402

AGENTS_PER_HOST = 25
ROUNDS = 20
SPAWNS = 6


def idle_spec(host, spawn: str):  # type: ignore[no-untyped-def]
    from gastown.hosts.base import LaunchSpec

    return LaunchSpec(spawn, ["/bin/sleep", "3600"], {"PATH": "/usr/bin:/bin"}, host.layout.base)


def start_idle(host, count: int, prefix: str, started: dict | None = None) -> list:  # type: ignore[no-untyped-def]
    """``count`` idle agents on ``host``; their logs. ``started`` gets ``spawn -> (host, pane, log)``."""
    logs = []
    for n in range(count):
        spawn = f"sp-{prefix}{n}"
        launch = host.stage_launch(idle_spec(host, spawn))
        log = host.layout.log_path("bench", f"p{n}", spawn)
        window = host.start_agent(launch, session="bench", window=f"p{n}", cwd=host.layout.base, ids={}, log_path=log,
                                  spawn=spawn)
        logs.append(log)
        if started is not None:
            started[spawn] = (host.name, window.pane, str(log))
    return logs


def record_agents(ctx, started: dict) -> None:  # type: ignore[no-untyped-def]
    """Ledger rows for the idle agents, as if slung: an issue, a hook and a running spawn each."""
    from gastown.ledger import issues, work

    with ctx.ledger.write() as conn:
        for spawn, (host, pane, log) in started.items():
            issue = issues.create_issue(conn, rig="app", prefix="app", title=spawn, body="", priority=2, now=ctx.now()).id
            polecat = spawn.removeprefix("sp-")
            work.add_polecat(conn, "app", polecat, ctx.now())
            work.insert_hook(conn, issue=issue, rig="app", polecat=polecat, branch=f"polecat/{polecat}/{issue}",
                             agent="demo", kind="fresh", note=None, now=ctx.now(), host=host)
            work.insert_spawn(conn, spawn_id=spawn, issue=issue, rig="app", polecat=polecat, agent="demo", attempt=1,
                              kind="fresh", log_path=log, prompt_path="-", now=ctx.now(), host=host)
            work.set_hook_spawn(conn, issue, spawn)
            work.update_spawn(conn, spawn, status="running", pane_id=pane)


def patrol_figures(town_dir: Path, remote: dict, local: dict) -> tuple[float, float, dict[str, int]]:  # type: ignore[type-arg]
    """Median of a Witness gather over the remote agents vs over as many local ones, each in
    its own town; the round trips of one remote gather, per host."""
    from gastown.context import Context
    from gastown.roles.witness import Witness
    from gastown.town import Town

    figures = []
    trips: dict[str, int] = {}
    for agents in (remote, local):
        ctx = Context(Town(town_dir))
        with ctx.ledger.write() as conn:
            conn.execute("DELETE FROM spawns")
            conn.execute("DELETE FROM hooks")
        record_agents(ctx, agents)
        witness = Witness(ctx, "app")
        witness.hosts.checkpoints = {host: float("inf") for host in ("h1", "h2")}  # branches are not what is measured
        witness.gather(ctx.now())  # warm: connections, the settings
        before = {h: ctx.host(h).ssh.round_trips for h in ("h1", "h2")} if agents is remote else {}
        snap = witness.gather(ctx.now())
        trips = {h: ctx.host(h).ssh.round_trips - n for h, n in before.items()} or trips
        assert sum(a.pane_alive for a in snap.agents) == len(agents), [a.pane_alive for a in snap.agents]
        figures.append(median_of(lambda w=witness, c=ctx: w.gather(c.now())))
    return figures[0], figures[1], trips


def sling_figure(town_dir: Path) -> float:  # type: ignore[no-untyped-def]
    """Median time of ``sling()`` placing an issue on host h1, from the call to the agent
    running there (window up, started): placement, the claim, the mirror push, the
    worktree, the token and launch file, the window. With the town's server running (the
    agents' tunnel goes to it) and the demo agent."""
    import subprocess

    from gastown.context import Context
    from gastown.ledger import issues
    from gastown.roles.polecat import sling
    from gastown.roles.serving import running_server
    from gastown.town import Town

    set_config(town_dir, "rigs.app", {"hosts": ["h1"], "agent": "demo"})
    set_config(town_dir, "town", {"max_polecats": 40})
    set_config(town_dir, "server", {"enabled": True, "port": 0})
    server = subprocess.Popen([sys.executable, "-m", "gastown", "serve", "--town", str(town_dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while running_server(Town(town_dir)) is None:
            assert time.monotonic() < deadline and server.poll() is None, "gt serve did not start"
            time.sleep(0.1)
        with Context(Town(town_dir)).ledger.write() as conn:  # the patrol's rows would hold every slot
            conn.execute("DELETE FROM spawns")
            conn.execute("DELETE FROM hooks")
        times = []
        for n in range(SPAWNS + 1):
            ctx = Context(Town(town_dir))  # one per sling, as each `gt sling` is a process of its own
            with ctx.ledger.write() as conn:
                issue = issues.create_issue(conn, rig="app", prefix="app", title=f"sling {n}", body="", priority=2,
                                            now=ctx.now()).id
            started = time.perf_counter()
            result = sling(ctx, issue)
            took = time.perf_counter() - started
            assert result.status == "started", result
            if n:  # the first one also makes the mirror and ships the trampoline
                times.append(took)
        return statistics.median(times)
    finally:
        server.terminate()
        server.wait(timeout=30)


def median_of(fn, rounds: int = ROUNDS) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    from gastown.hosts import open_host
    from gastown.hosts.ssh import SshHost
    from gastown.town import Town

    work = Path(tempfile.mkdtemp(prefix="gt-bench-hosts-"))
    servers = [SshServer(work / f"sshd{i}") for i in (1, 2)]
    for server in servers:
        server.start()
    try:
        with bench_town() as town_dir:
            for i, server in enumerate(servers, 1):
                set_config(town_dir, f"hosts.h{i}", server.host_table())
            town = Town(town_dir)
            hosts: list[SshHost] = [SshHost.from_config(f"h{i}", town) for i in (1, 2)]
            for host in hosts:
                assert all(c.ok for c in host.check(pin=True)), host.check()
            remote_agents: dict = {}  # type: ignore[type-arg]
            logs = {host.name: start_idle(host, AGENTS_PER_HOST, host.name, remote_agents) for host in hosts}
            local = open_host(town, "local")
            local.prepare()
            local_agents: dict = {}  # type: ignore[type-arg]
            local_logs = start_idle(local, 2 * AGENTS_PER_HOST, "l", local_agents)
            patrol_remote, patrol_local, patrol_trips = patrol_figures(town_dir, remote_agents, local_agents)

            trips = {}
            for host in hosts:
                before = host.ssh.round_trips
                snap = host.snapshot(logs[host.name])
                trips[host.name] = host.ssh.round_trips - before
                assert len(snap.panes) == AGENTS_PER_HOST, len(snap.panes)
            pool = ThreadPoolExecutor(len(hosts))
            both = lambda: list(pool.map(lambda h: h.snapshot(logs[h.name]), hosts))  # noqa: E731
            remote_time = median_of(both)
            local_time = median_of(lambda: local.snapshot(local_logs))
            bare = lambda: list(pool.map(lambda h: h.ssh.run(["true"]), hosts))  # noqa: E731
            floor_time = median_of(bare)

            spawn_time, hand_time = spawn_figures(town, hosts[0])
            sling_time = sling_figure(town_dir)
            for host in [*hosts, local]:
                host.tmux.kill_server() if host is local else host.stop_agents(
                    [p.pane_id for p in host.snapshot([]).panes], grace=0.5)
                host.close()
    finally:
        for server in servers:
            server.destroy()

    print(f"machine: {machine()}; medians of {ROUNDS}")
    print("snapshot round trips: " + ", ".join(f"{name} {n} for {AGENTS_PER_HOST} agents" for name, n in trips.items())
          + "   target 1 per host")
    print(f"floor: `ssh host true` on both hosts (parallel)  {floor_time * 1000:6.1f} ms   1.00x")
    print(f"snapshot of 2 hosts x {AGENTS_PER_HOST} agents (parallel) {remote_time * 1000:6.1f} ms   "
          f"{remote_time / floor_time:4.2f}x floor   {remote_time / local_time:5.1f}x the local snapshot")
    print(f"local snapshot of {2 * AGENTS_PER_HOST} agents              {local_time * 1000:6.1f} ms")
    print(f"Witness patrol (gather) of {2 * AGENTS_PER_HOST} local agents      {patrol_local * 1000:6.1f} ms   1.00x")
    print(f"Witness patrol (gather) of 2 hosts x {AGENTS_PER_HOST} agents  {patrol_remote * 1000:6.1f} ms   "
          f"{patrol_remote / patrol_local:4.2f}x   round trips: "
          + ", ".join(f"{h} {n}" for h, n in patrol_trips.items()) + "   target <= 2x, 1 per host")
    print(f"remote spawn steps by hand (same connection)  {hand_time * 1000:6.1f} ms   1.00x")
    print(f"remote spawn through the SSH driver           {spawn_time * 1000:6.1f} ms   {spawn_time / hand_time:4.2f}x")
    print(f"sling() to a remote agent running             {sling_time * 1000:6.1f} ms   {sling_time / hand_time:4.2f}x")


def spawn_figures(town, host) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median time of a remote spawn's steps through the driver vs by hand."""
    from gastown.git.cmd import Git

    hub = town.hub_path("app")
    target = "refs/remotes/origin/main"
    host.sync_rig("app", hub, [target])  # the mirror exists; both paths push into it
    ours, hand = [], []
    for n in range(SPAWNS):
        spawn = f"sp-s{n}"
        started = time.perf_counter()
        host.sync_rig("app", hub, [target])
        path = host.create_worktree("app", f"s{n}", f"polecat/s{n}/app-{n}", target)
        launch = host.stage_launch(idle_spec(host, spawn))
        host.start_agent(launch, session="spawn", window=f"s{n}", cwd=path, ids={},
                         log_path=host.layout.log_path("app", f"s{n}", spawn), spawn=spawn)
        ours.append(time.perf_counter() - started)

        spawn = f"sp-h{n}"
        mirror = str(host.layout.mirror_path("app"))
        path = str(host.layout.polecat_path("app", f"h{n}"))
        launch_file = str(host.layout.launch_path(spawn))
        started = time.perf_counter()
        Git(hub, env={"GIT_SSH_COMMAND": host.ssh.git_ssh_command()}).run(
            "push", "--quiet", f"ssh://{host.ssh.target.destination}{mirror}", f"+{target}:{target}")
        host.ssh.run(["git", "-C", mirror, "worktree", "add", "-q", "-b", f"polecat/h{n}/app-{n}", path, target])
        host.ssh.run(["sh", "-c", 'umask 077; mkdir -p "$(dirname "$1")" && cat > "$1"', "sh", launch_file], input="{}")
        host.ssh.run(["tmux", "-S", str(host.layout.tmux_socket), "new-window", "-d", "-t", "=spawn:", "-c", path,
                      "--", "sh", "-c", f"sleep 3600 # {shlex.quote(launch_file)}"])
        hand.append(time.perf_counter() - started)
    return statistics.median(ours), statistics.median(hand)


if __name__ == "__main__":
    main()

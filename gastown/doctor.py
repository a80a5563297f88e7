"""`gt doctor`: check what a town needs and say how to fix each problem.

Each check is a function returning ``Check`` rows; none of them changes anything.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from gastown.errors import GastownError
from gastown.hosts.base import HostCheck

MIN_TMUX = (3, 0)
MIN_GIT = (2, 25)


# One line of the doctor's report: the same shape as a host's check lines.
Check = HostCheck


def parse_version(text: str) -> tuple[int, int] | None:
    """The first ``X.Y`` in a version banner.

    >>> parse_version("tmux 3.3a"), parse_version("git version 2.39.5"), parse_version("tmux next-3.5")
    ((3, 3), (2, 39), (3, 5))
    """
    match = re.search(r"(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_tool(name: str, version_args: list[str], minimum: tuple[int, int], install: str) -> Check:
    from gastown._internal.proc import run

    if shutil.which(name) is None:
        return Check(name, False, f"{name} is not installed", f"install {name} {minimum[0]}.{minimum[1]} or newer ({install})")
    result = run([name, *version_args], timeout=10)
    version = parse_version(result.stdout + result.stderr)
    banner = (result.stdout or result.stderr).strip()
    if version is None:
        return Check(name, False, f"cannot read the version of {name} ({banner!r})", f"reinstall {name}")
    if version < minimum:
        return Check(
            name, False, f"{banner} is older than {minimum[0]}.{minimum[1]}", f"upgrade {name} ({install})"
        )
    return Check(name, True, banner)


def check_tools() -> list[Check]:
    return [
        check_tool("tmux", ["-V"], MIN_TMUX, "e.g. apt-get install tmux / brew install tmux"),
        check_tool("git", ["--version"], MIN_GIT, "e.g. apt-get install git / brew install git"),
    ]


def check_town(town_root: Path, *, gates: bool = True) -> list[Check]:
    """Config validity, then each rig's hub and upstream, then (``gates``) each rig's gates
    on its target as the upstream has it now."""
    from gastown.context import Context
    from gastown.git.hub import probe_upstream
    from gastown.town import Town

    ctx = Context(Town(town_root))
    try:
        cfg = ctx.config
    except GastownError as exc:
        return [Check("config", False, exc.message, exc.hint)]
    checks = [Check("config", True, f"{ctx.town.config_path} is valid")]
    checks += check_runtimes(ctx)
    checks += check_identity_and_user(town_root)
    checks += check_orphans(ctx)
    checks += check_server(ctx)
    checks += check_triggers(ctx)
    checks += check_github(ctx)
    checks += check_hosts(ctx)
    for name, rig in sorted(cfg.rigs.items()):
        hub = ctx.town.hub_path(name)
        if not (hub / "HEAD").is_file():
            checks.append(
                Check(f"rig {name}", False, f"hub {hub} is missing", f"`gt rig remove {name}` then `gt rig add {name} {rig.repo}`")
            )
            continue
        problem = probe_upstream(hub)
        if problem:
            checks.append(Check(f"rig {name}", False, f"upstream {rig.repo} is unreachable: {problem}", "check the URL, network and credentials"))
            continue
        checks.append(Check(f"rig {name}", True, f"hub ok, upstream {rig.repo} reachable"))
        if gates:
            checks.append(check_gates(ctx, name))
    return checks


def check_gates(ctx: Any, rig: str) -> Check:
    """Run the rig's gates, as the refinery would, on its target as the upstream has it now
    (in a throwaway worktree of the hub, removed afterwards). A red target holds the whole
    merge queue, so it is a failure; no gates at all is a warning."""
    import os
    import shutil as _shutil

    from gastown.git.cmd import Git
    from gastown.git.hub import fetch
    from gastown.git.worktrees import ref_sha, target_ref
    from gastown.refinery.gates import gate_env, gate_marker, run_gates
    from gastown.refinery.settings import resolve_settings

    settings = resolve_settings(ctx.config, rig)
    name = f"gates {rig}"
    if not settings.gates:
        return Check(name, True, "no gates: the merge queue merges every stack that applies cleanly, untested",
                     f"set gates = [\"...\"] in [rigs.{rig}] (the commands your CI runs)", warn=True)
    hub = ctx.town.hub_path(rig)
    try:
        fetch(hub)
    except GastownError as exc:
        return Check(name, False, f"cannot fetch {settings.target} to try the gates: {exc.message}", exc.hint)
    sha = ref_sha(hub, target_ref(settings.target))
    if sha is None:
        return Check(name, False, f"the upstream has no branch {settings.target!r}", f"fix branch in [rigs.{rig}]")
    path = ctx.town.state_dir / "doctor" / f"{rig}-{os.getpid()}"
    git = Git(hub)
    try:
        git.run("worktree", "add", "--detach", "--quiet", str(path), sha)
        run = run_gates(settings.gates, cwd=path, timeout=settings.gate_timeout,
                        env=gate_env(ctx.config.without_secrets(ctx.environ), rig=rig, round_id=0, marker=gate_marker(ctx.town.root, rig) + "doctor"),
                        log_path=ctx.town.logs_dir / rig / "doctor-gates.log", header=f"gt doctor: {settings.target} at {sha[:12]}")
    except GastownError as exc:
        return Check(name, False, f"could not try the gates: {exc.message}", exc.hint)
    finally:
        git.run("worktree", "remove", "--force", str(path), check=False)
        _shutil.rmtree(path, ignore_errors=True)
        git.run("worktree", "prune", check=False)
    where = f"{settings.target} at {sha[:12]}"
    if run.ok:
        return Check(name, True, f"{len(settings.gates)} gate(s) pass on {where} in {run.duration:.1f}s")
    from gastown.refinery.gates import verdict

    why = f"timed out after {settings.gate_timeout:g}s" if run.timed_out else verdict(run.output)
    return Check(
        name, False, f"`{run.failed_gate}` fails on {where}: {why}",
        "the target itself is red, so the merge queue holds: fix it upstream, or fix `gates` in gastown.toml "
        f"(output in {ctx.town.logs_dir / rig / 'doctor-gates.log'})",
    )


def check_runtimes(ctx: Any) -> list[Check]:
    """Every runtime a rig (or the town default) uses must resolve and be installed."""
    from gastown.runtimes.registry import resolve_runtime

    cfg = ctx.config
    names = {cfg.town.default_agent} if not cfg.rigs else set()
    names |= {rig.agent or cfg.town.default_agent for rig in cfg.rigs.values()}
    checks = []
    for name in sorted(names):
        try:
            runtime = resolve_runtime(cfg, name)
        except GastownError as exc:
            checks.append(Check(f"runtime {name}", False, exc.message, exc.hint))
            continue
        binary = runtime.command[0]
        if shutil.which(binary) is None and not Path(binary).is_file():
            checks.append(
                Check(
                    f"runtime {name}",
                    False,
                    f"{binary} is not installed (used by runtime {name!r})",
                    "install it, or set another agent with `agent = ...` in gastown.toml (docs/runtimes.md)",
                )
            )
        else:
            checks.append(Check(f"runtime {name}", True, f"{binary} found"))
    return checks


def check_identity_and_user(town_root: Path) -> list[Check]:
    """Commits need a git identity; agents running as root bypass permissions as root."""
    import os

    from gastown._internal.proc import run

    checks = []
    missing = [v for v in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT") if not run(["git", "var", v], cwd=town_root, timeout=10).ok]
    if missing:
        checks.append(Check(
            "git identity", False, "git has no user.name/user.email: agents' and the refinery's commits would fail",
            'git config --global user.name "Your Name" && git config --global user.email you@example.com',
        ))
    else:
        checks.append(Check("git identity", True, "set"))
    if os.geteuid() == 0:
        checks.append(Check(
            "user", True, "running as root: agents run with bypassed permissions as root",
            "run gastown as an ordinary user, or inside a container or VM you can throw away", warn=True,
        ))
    return checks


def check_hosts(ctx: Any) -> list[Check]:
    """Every SSH host of the town (``gt host check``'s lines); never pins a key."""
    from gastown.hosts.admin import check_hosts as host_checks

    return host_checks(ctx.town, pin=False)


def check_orphans(ctx: Any) -> list[Check]:
    """Hooked work with no agent while no Mayor runs, and gastown windows of finished runs."""
    from gastown.ledger import work
    from gastown.roles.mayor import running_pid

    conn = ctx.ledger.connection()
    hooks = work.list_hooks(conn)
    live = {s.id for s in work.spawns_with_status(conn, work.LIVE_STATUSES)}
    waiting = work.waiting_hooked_issues(conn)  # stopped or blocked on purpose: `gt up` leaves them
    idle_hooks = [h for h in hooks if h.spawn not in live and h.issue not in waiting]
    checks = []
    if idle_hooks and running_pid(ctx.town) is None:
        checks.append(Check(
            "hooked work", False, f"{len(idle_hooks)} issue(s) on hooks have no agent and no Mayor is running",
            "run `gt up`: it resumes them in their worktrees",
        ))
    stray = []
    for pane in ctx.tmux.list_panes():
        spawn = work.get_spawn(conn, pane.spawn) if pane.spawn and pane.spawn not in live else None
        if spawn is not None and spawn.status != "done":
            stray.append(pane)
    if stray:
        checks.append(Check(
            "windows", False, f"{len(stray)} gastown window(s) belong to runs that are over",
            "`gt up` (the Deacon closes them), or close them by hand",
        ))
    if not checks:
        checks.append(Check("orphans", True, f"{len(hooks)} hooked issue(s), nothing left over"))
    return checks


def check_server(ctx: Any) -> list[Check]:
    """The HTTP server: an address it may bind, and running and healthy while the Mayor runs."""
    from gastown.roles import serving
    from gastown.roles.mayor import running_pid
    from gastown.server.run import check_bind

    cfg = ctx.config.server
    if not cfg.enabled:
        return [Check("server", True, "disabled ([server] enabled = false); `gt serve` runs it by hand")]
    try:
        check_bind(cfg.host, cfg, ctx.environ)
    except GastownError as exc:
        return [Check("server", False, exc.message, exc.hint)]
    record = serving.running_server(ctx.town)
    if record is None:
        if running_pid(ctx.town) is None:
            return [Check("server", True, f"not running; `gt up` starts it on {serving.base_url(ctx)}")]
        return [Check("server", False, f"not running although the Mayor is ({serving.last_words(ctx) or 'no output'})",
                      "read .gastown/logs/server.log; the Deacon retries every 30s, `gt up` starts it now")]
    health = serving.probe(record, serving.server_token(cfg, ctx.environ))
    if not health.ok:
        return [Check("server", False, f"{record.url} (pid {record.pid}) is not healthy: {health.detail}",
                      "read .gastown/logs/server.log; `gt down` then `gt up` restarts it")]
    return [Check("server", True, f"{record.url} healthy (pid {record.pid})")]


def check_github(ctx: Any) -> list[Check]:
    """Each rig with ``[rigs.X.github]``: its token variable is set and opens the repository
    (one call, no retries); its webhook secret, when named, is set."""
    from gastown.github import connect

    checks = []
    for rig, cfg in sorted(ctx.config.rigs.items()):
        if cfg.github is None:
            continue
        name = f"github {rig}"
        if cfg.github.webhook_secret_env and not ctx.environ.get(cfg.github.webhook_secret_env):
            checks.append(Check(name, False, f"the webhook secret variable {cfg.github.webhook_secret_env} is not set",
                                "export it where `gt up` runs (docs/github.md)"))
            continue
        try:
            repo = connect(ctx, rig, max_retries=0)
            try:
                data = repo.client.get(repo.path("")).data or {}
            finally:
                repo.client.close()
        except GastownError as exc:
            checks.append(Check(name, False, exc.message, exc.hint))
            continue
        pushable = (data.get("permissions") or {}).get("push")
        checks.append(Check(name, True, f"{cfg.github.repo} reachable with the token"
                            + ("" if pushable is not False else " (read-only: merge = \"pr\" cannot push)")))
    return checks


def check_triggers(ctx: Any) -> list[Check]:
    """Each trigger's rig and agent exist and its secret is in the environment."""
    from gastown.roles.trigger_ops import describe

    checks = []
    for view in describe(ctx, read_only=True):
        if view.problems:
            checks.append(Check(f"trigger {view.name}", False, "; ".join(view.problems),
                                "fix [triggers." + view.name + "] in gastown.toml, or export the variable it names "
                                "before `gt up`"))
        else:
            checks.append(Check(f"trigger {view.name}", True, f"{view.kind} for rig {view.rig}"
                                + (" (paused)" if view.paused else "")))
    return checks

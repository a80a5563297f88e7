"""The one place agents are launched: env, argv, the tmux window, start-up and teardown.

An agent runs as ``env -u TMUX ... <absolute binary> <args>``, started directly by tmux
(never through a shell), so the pane's process *is* the agent and no issue text is ever
parsed by a shell. Its pane is piped to the spawn's log and tagged with the spawn id.
A one-shot headless run outside any pane (an AI reviewer) goes through ``run_headless``,
with the same argv, home and environment rules.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from typing import TYPE_CHECKING

from gastown._internal.proc import Result
from gastown.errors import GastownError, ToolMissing
from gastown.prompts import MAX_ARGV_PROMPT, short_prompt_for_argv
from gastown.runtimes.registry import Runtime
from gastown.screen import tail
from gastown.tmux.driver import SCRUBBED_ENV, Tmux
from gastown.town import Town

if TYPE_CHECKING:
    from gastown.config.schema import TownConfig
    from gastown.runtimes.homes import HomePlan, ModelEndpoint

HOLD_ARGV = ("sleep", "3600")
# "This is a CI job" markers: with CI=true, gemini starts headless even in a terminal (and
# other CLIs skip prompts or animation), so an agent launched from a CI shell would never
# show its TUI. An agent in a pane is interactive; `[agents.X] env` can set one back.
CI_MARKERS = ("CI", "CONTINUOUS_INTEGRATION", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "CIRCLECI", "TRAVIS",
              "JENKINS_URL", "TEAMCITY_VERSION", "TF_BUILD", "BUILD_NUMBER", "RUN_ID")
# Inherited variables that break agents: tmux's own, Claude Code's "nested session" marker, CI markers.
UNSET_FOR_AGENTS = (*SCRUBBED_ENV, *CI_MARKERS)
TRAMPOLINE = Path(__file__).resolve().parent.parent / "_exec.py"
_PLACEHOLDER = re.compile(r"\{(prompt|prompt_file)\}")


class LaunchFailed(GastownError):
    """The agent could not be started, or exited at once."""


def ensure_gt_shim(town: Town) -> Path:
    """``<town>/.gastown/bin/gt``: runs this installation's gastown with this interpreter.

    Put first on the agents' PATH so `gt done` reaches the same gastown and town
    without also putting gastown's virtualenv (and its python) on their PATH. It drops
    the git config an agent CLI passes to its shell commands in the environment.
    """
    shim = town.bin_dir / "gt"
    # Agent CLIs hand their shell commands git config through the environment (copilot:
    # safe.bareRepository=explicit, which makes every git call on the bare hub fail);
    # that config is meant for the agent's own git use, not for gastown's.
    text = f'#!/bin/sh\nunset GIT_CONFIG_COUNT GIT_CONFIG_PARAMETERS\nexec "{sys.executable}" -m gastown "$@"\n'
    if not shim.exists() or shim.read_text() != text:
        town.bin_dir.mkdir(parents=True, exist_ok=True)
        tmp = shim.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(shim)
    return shim


@dataclass(frozen=True)
class AgentIdentity:
    rig: str
    polecat: str
    issue: str
    spawn: str
    attempt: int
    kind: str
    branch: str
    target: str


def agent_env(
    town: Town,
    who: AgentIdentity,
    runtime: Runtime,
    *,
    socket: str,
    prompt_path: Path,
    base_env: Mapping[str, str],
) -> dict[str, str]:
    """The complete environment an agent starts with: the caller's, minus variables that
    break agents, plus the runtime's ``env`` and gastown's ``GT_*`` (docs/architecture.md)."""
    inherited = {k: v for k, v in base_env.items() if k not in UNSET_FOR_AGENTS}
    base_path = base_env.get("PATH", os.defpath)
    return {
        **inherited,
        **runtime.env,
        "GT_TOWN": str(town.root),
        **identity_env(who, runtime, prompt_path=str(prompt_path)),
        "GT_TMUX_SOCKET": socket,
        "PATH": f"{town.bin_dir}:{base_path}",
    }


def identity_env(who: AgentIdentity, runtime: Runtime, *, prompt_path: str) -> dict[str, str]:
    """The ``GT_*`` identity every agent gets, here or on another host."""
    return {
        "GT_RIG": who.rig,
        "GT_POLECAT": who.polecat,
        "GT_ISSUE": who.issue,
        "GT_SPAWN": who.spawn,
        "GT_ROLE": "polecat",
        "GT_AGENT": runtime.name,
        "GT_ATTEMPT": str(who.attempt),
        "GT_PROMPT_KIND": who.kind,
        "GT_PROMPT_FILE": prompt_path,
        "GT_BRANCH": who.branch,
        "GT_TARGET": who.target,
    }


def remote_agent_env(
    who: AgentIdentity, runtime: Runtime, *, prompt_path: str, hub_socket: str, token_file: str
) -> dict[str, str]:
    """What gastown adds to an agent's environment on another host (the host's own
    environment is its base, see ``hosts.base.LaunchSpec``): the runtime's ``env`` and the
    ``GT_*`` identity, plus where the hub answers (``GT_HUB_SOCKET``, the tunnel's end) and
    the file holding the spawn's token. No ``GT_TOWN``: there is no town on that host."""
    return {
        **runtime.env,
        **identity_env(who, runtime, prompt_path=prompt_path),
        "GT_HUB_SOCKET": hub_socket,
        "GT_TOKEN_FILE": token_file,
    }


def resolve_binary(name: str, path: str, runtime: str) -> str:
    """Absolute path of the agent's program (tmux does not search the agent's PATH)."""
    if "/" in name:
        candidate = Path(name).expanduser()
        if candidate.is_file():
            return str(candidate.absolute())
    else:
        found = shutil.which(name, path=path)
        if found:
            return found
    raise ToolMissing(
        f"the agent command {name!r} of runtime {runtime!r} was not found",
        hint=f"install it, or fix [agents.{runtime}].command in gastown.toml (see docs/runtimes.md)",
    )


def agent_argv(runtime: Runtime, *, prompt: str, prompt_file: Path | PurePosixPath, path: str | None) -> list[str]:
    """The agent's argv with an absolute binary and ``{prompt}``/``{prompt_file}`` filled in.

    In ``arg`` mode a prompt too big for one argument is replaced by a pointer to its file.
    ``path`` None: the program is left as configured, to be found on another host's PATH.
    """
    command = list(runtime.command)
    if runtime.prompt == "arg":
        if not any(_PLACEHOLDER.search(arg) for arg in command):
            command.append("{prompt}")
        text = prompt if len(prompt.encode("utf-8")) <= MAX_ARGV_PROMPT else short_prompt_for_argv(str(prompt_file))
    else:
        text = short_prompt_for_argv(str(prompt_file))
    values = {"prompt": text, "prompt_file": str(prompt_file)}
    filled = [_PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in command]
    if path is None:
        return filled
    return [resolve_binary(filled[0], path, runtime.name), *filled[1:]]


def launch_file_path(run_dir: Path, spawn_id: str) -> Path:
    return run_dir / "launch" / f"{spawn_id}.json"


def write_launch_file(
    run_dir: Path, spawn_id: str, argv: list[str], env: Mapping[str, str], cwd: Path
) -> Path:
    """The trampoline's instructions (owner-only: the env may hold keys; deleted when read).

    Written under a ``.pending`` name; the trampoline waits until ``release_launch_file``
    renames it, i.e. until the pane is tagged and piped to its log.
    """
    path = launch_file_path(run_dir, spawn_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_pending(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"argv": argv, "env": dict(env), "cwd": str(cwd)}, handle, ensure_ascii=False)
    return path


def _pending(path: Path) -> Path:
    return path.with_name(path.name + ".pending")


def release_launch_file(path: Path) -> None:
    os.replace(_pending(path), path)


def discard_launch_file(path: Path) -> None:
    for candidate in (path, _pending(path)):
        candidate.unlink(missing_ok=True)


def trampoline_argv(launch_file: Path) -> list[str]:
    return [sys.executable, "-S", "-E", str(TRAMPOLINE), str(launch_file)]


def prestart_window(
    tmux: Tmux, *, session: str, window: str, cwd: Path, launch_file: Path, ids: Mapping[str, str]
) -> str:
    """Open the agent's window now, its trampoline waiting for ``launch_file``; returns the pane id."""
    return tmux.new_window(session, window, cwd=cwd, env=ids, argv=trampoline_argv(launch_file))


def open_pane(
    tmux: Tmux,
    *,
    session: str,
    window: str,
    cwd: Path,
    launch_file: Path,
    ids: Mapping[str, str],
    log_path: Path,
    spawn_id: str,
    reuse_pane: str | None = None,
    prestarted: str | None = None,
) -> str:
    """Start the agent in its own window (or respawn it in ``reuse_pane``); returns the pane id.

    A new window starts the trampoline at once, which waits for its launch file while the
    pane is tagged and piped to the log (one tmux call); releasing the file lets it exec the
    agent, so no byte of output misses the log. A reused pane is re-piped, then respawned.
    ``ids`` (the ``GT_*`` identity) is also given to tmux with ``-e`` so it shows on the pane.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pipe = f"exec cat >> {shlex.quote(str(log_path))}"
    if reuse_pane and tmux.pane_exists(reuse_pane):
        pane = reuse_pane
        tmux.cmd("pipe-pane", "-t", pane, check=False)  # close the previous spawn's log
        if tmux.display(pane, "#{pane_dead}") == "1":
            tmux.respawn(pane, cwd=cwd, env=ids, argv=list(HOLD_ARGV))  # a dead pane takes no pipe
        release_launch_file(launch_file)
        env_args = [arg for key, value in ids.items() for arg in ("-e", f"{key}={value}")]
        tmux.cmd(
            "set-option", "-p", "-t", pane, "@gt_spawn", spawn_id, ";",
            "pipe-pane", "-o", "-t", pane, pipe, ";",
            "respawn-pane", "-k", "-t", pane, "-c", str(cwd), *env_args, "--", *trampoline_argv(launch_file),
        )
        return pane
    pane = prestarted or tmux.new_window(session, window, cwd=cwd, env=ids, argv=trampoline_argv(launch_file))
    tmux.cmd("set-option", "-p", "-t", pane, "@gt_spawn", spawn_id, ";", "pipe-pane", "-o", "-t", pane, pipe)
    release_launch_file(launch_file)
    return pane


def check_started(tmux: Tmux, pane: str, *, checks: tuple[float, ...] = (0.05, 0.25)) -> None:
    """Raise ``LaunchFailed`` with the agent's own last words if it exits at once."""
    for delay in checks:
        time.sleep(delay)
        status = tmux.display(pane, "#{pane_dead}\t#{pane_dead_status}")
        if status is None:
            raise LaunchFailed("the agent's tmux window vanished right after start")
        dead, _, code = status.partition("\t")
        if dead == "1" and not code:
            # tmux may not have reaped the child yet; any other child exit makes it do so.
            tmux.cmd("run-shell", "true", check=False)
            code = (tmux.display(pane, "#{pane_dead_status}") or "").strip()
        if dead == "1":
            said = [
                line.strip() for line in tmux.capture(pane, 30).splitlines()
                if line.strip() and not line.startswith("Pane is dead")
            ]
            last = " | ".join(said[-5:]) or "(no output)"
            raise LaunchFailed(
                f"the agent exited at once (status {code or '?'}): {last}",
                hint="run its command by hand in the worktree to see why",
            )


def pane_pid(tmux: Tmux, pane: str) -> int | None:
    value = tmux.display(pane, "#{pane_pid}")
    return int(value) if value and value.isdigit() else None


def stop_pane(tmux: Tmux, pane: str, *, grace: float = 5.0) -> str | None:
    """Stop the agent in ``pane`` and its whole process tree, then close the window.

    Returns the pane's last lines (kept for post-mortems), or None if it was already gone.
    """
    from gastown._internal.processes import terminate_tree

    if not tmux.pane_exists(pane):
        return None
    try:
        last = tail(tmux.capture(pane, 40), 20)
    except GastownError:
        last = None
    pid = pane_pid(tmux, pane)
    if pid and tmux.display(pane, "#{pane_dead}") != "1":
        terminate_tree(pid, grace=grace)
    tmux.kill_window(pane)
    return last


@dataclass(frozen=True)
class HeadlessRun:
    """One headless run of an agent CLI: what it printed, how it ended, where its home was."""

    result: Result
    home: Path | None


def headless_env(base_env: Mapping[str, str], runtime: Runtime, identity: Mapping[str, str]) -> dict[str, str]:
    """The environment of a one-shot headless run (a reviewer): the caller's, minus what
    breaks agents (tmux, CI markers) and minus every ``GT_*`` variable (gastown's own
    settings and secrets stay with gastown), plus the runtime's ``env`` and ``identity``.

    >>> from gastown.runtimes.registry import resolve_runtime
    >>> from gastown.config.schema import TownConfig
    >>> rt = resolve_runtime(TownConfig(), "demo")
    >>> env = headless_env({"PATH": "/bin", "CI": "true", "GT_GITHUB_TOKEN": "s3cret", "HOME": "/h"}, rt, {"GT_ROLE": "review"})
    >>> sorted(env)
    ['GT_ROLE', 'HOME', 'PATH']
    """
    inherited = {k: v for k, v in base_env.items() if k not in UNSET_FOR_AGENTS and not k.startswith("GT_")}
    return {**inherited, **runtime.env, **identity, "PATH": base_env.get("PATH", os.defpath)}


def run_headless(
    town: Town,
    config: TownConfig,
    runtime: Runtime,
    *,
    run_id: str,
    cwd: Path,
    prompt: str,
    prompt_file: Path,
    base_env: Mapping[str, str],
    identity: Mapping[str, str],
    timeout: float,
    oversize_prompt: str,
) -> HeadlessRun:
    """Run ``runtime``'s headless command once in ``cwd`` and wait for it (at most
    ``timeout``; then its process group is killed): the one way gastown starts a CLI
    outside a pane. Same rules as agents: the runtime's private home for ``run_id``
    (``.gastown/homes/<run_id>``, seeded, the model key passed by variable name only:
    the one variable ``[town.model]`` names is kept), CI markers stripped, no other
    ``GT_*`` of the caller (see ``headless_env``). stdin is
    /dev/null; stdout and stderr are captured. A prompt too big for one argument is
    replaced by ``oversize_prompt`` (which should point at ``prompt_file``). Whatever the
    run left behind (daemons found by its home) is stopped before returning.

    Raises ``ConfigError`` for a runtime without a headless command and ``ToolMissing``
    when its program is not installed. The home is left for the caller to read usage
    from and remove (``home_path``).
    """
    from dataclasses import replace

    from gastown._internal.proc import run
    from gastown._internal.processes import sweep
    from gastown.errors import ConfigError

    if not runtime.headless:
        raise ConfigError(f"runtime {runtime.name!r} has no headless command",
                          hint=f"set [agents.{runtime.name}].headless, or pick another agent")
    env = headless_env(config.without_secrets(base_env), runtime, identity)
    endpoint = model_endpoint(config, runtime)
    if endpoint is not None and endpoint.api_key_env in base_env:
        # The model key travels under the variable [town.model] names (a GT_* one too):
        # the CLI, or its home plan, reads it from there.
        env[endpoint.api_key_env] = base_env[endpoint.api_key_env]
    fits = len(prompt.encode("utf-8")) <= MAX_ARGV_PROMPT
    argv = agent_argv(replace(runtime, command=runtime.headless, prompt="arg"), prompt=prompt if fits else oversize_prompt,
                      prompt_file=prompt_file, path=env["PATH"])
    plan = prepare_home(town, config, runtime, run_id, cwd, env)
    if plan is not None:
        from gastown.runtimes.homes import spawn_env

        env = spawn_env(plan, env)
        argv += list(plan.args)
    home = home_path(town, run_id) if plan is not None else None
    try:
        result = run(argv, cwd=cwd, env=env, timeout=timeout, new_session=True)
    finally:
        if home is not None:
            sweep(str(home), grace=1.0)
    return HeadlessRun(result, home)


# Which provider table of [town.model] a CLI reads, and the API family it speaks there.
PROVIDERS = {
    "claude": ("anthropic", "anthropic"),
    "codex": ("openai", "openai-responses"),
    "gemini": ("gemini", "gemini"),
    "aider": ("openai", "openai-chat"),
    "opencode": ("openai", "openai-chat"),
    "copilot": ("openai", "openai-chat"),
}


def model_endpoint(config: TownConfig, runtime: Runtime) -> ModelEndpoint | None:
    """The endpoint a runtime's CLI talks to, from ``[town.model]``, its provider table and
    ``[agents.<name>].model`` (most specific wins per key); None: the CLI's own login."""
    from gastown.errors import ConfigError
    from gastown.runtimes.homes import ModelEndpoint

    if runtime.cli not in PROVIDERS:
        return None
    provider, family = PROVIDERS[runtime.cli]
    town = config.town.model
    layers = [town, getattr(town, provider, None) if town else None, runtime.model]
    merged: dict[str, str] = {}
    for layer in layers:
        if layer is None:
            continue
        for key in ("base_url", "api_key_env", "model"):
            value = getattr(layer, key)
            if value is not None:
                merged[key] = value
    if "base_url" not in merged:
        return None
    missing = [key for key in ("api_key_env", "model") if key not in merged]
    if missing:
        raise ConfigError(
            f"town.model: {missing[0]} is required once base_url is set (runtime {runtime.name!r}, provider {provider})",
            hint=f"set town.model.{missing[0]} or town.model.{provider}.{missing[0]} (or agents.{runtime.name}.model)",
        )
    return ModelEndpoint(family, merged["base_url"], merged["model"], merged["api_key_env"])  # type: ignore[arg-type]


def git_identity(worktree: Path, environ: Mapping[str, str]) -> tuple[str, str]:
    """Who an agent's commits are by: git's own idea in the worktree, else a gastown default."""
    from gastown.git.cmd import Git

    git = Git(worktree)
    name = environ.get("GIT_AUTHOR_NAME") or git.run("config", "user.name", check=False).stdout.strip()
    email = environ.get("GIT_AUTHOR_EMAIL") or git.run("config", "user.email", check=False).stdout.strip()
    return name or "gastown polecat", email or "polecat@gastown.invalid"


def home_path(town: Town, spawn_id: str) -> Path:
    return town.state_dir / "homes" / spawn_id


def prepare_home(
    town: Town, config: TownConfig, runtime: Runtime, spawn_id: str, worktree: Path, environ: Mapping[str, str]
) -> HomePlan | None:
    """Write the spawn's private home for its CLI (docs/runtimes.md); None for runtimes
    without one. The user's real home is only read."""
    from gastown.runtimes.homes import plan_home, write_home

    if runtime.cli is None:
        return None
    plan = plan_home(
        runtime.cli,  # type: ignore[arg-type]
        home_path(town, spawn_id),
        worktree,
        Path(environ.get("HOME") or os.path.expanduser("~")),
        model_endpoint(config, runtime),
        as_root=os.geteuid() == 0,
        shared_cache=town.state_dir / "cache",
        git_identity=git_identity(worktree, environ),
    )
    write_home(plan)
    return plan

"""What a host has (tmux, git, gt, python, the agent CLIs) and what it lacks, with fixes.

A probe gathers the facts (locally with ``shutil.which``; on an SSH host with ONE
script, ``PROBE_SCRIPT``); ``assess_probe`` turns them into check lines (pure, tested
with a table).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from gastown import __version__
from gastown.hosts.base import HostCheck

MIN_TMUX = (3, 2)  # new-session -e (the GT_* identity on the pane)
MIN_GIT = (2, 25)


@dataclass(frozen=True)
class Probe:
    """Facts about one host. A banner is None when the tool is missing."""

    tmux: str | None
    git: str | None
    gt: str | None
    python: str | None
    git_identity: bool
    root: str | None  # the host's directory for this town, resolved; None if it cannot be made
    agents: Mapping[str, str | None] = field(default_factory=dict)  # program -> its path, or None


def version_of(banner: str | None) -> tuple[int, int] | None:
    """The first ``X.Y`` in a banner.

    >>> version_of("tmux 3.3a"), version_of("gt 0.1.0"), version_of(None)
    ((3, 3), (0, 1), None)
    """
    match = re.search(r"(\d+)\.(\d+)", banner or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def assess_probe(host: str, probe: Probe, agents: Mapping[str, str]) -> list[HostCheck]:
    """One check per requirement, each failed one with its fix. ``agents`` maps each
    runtime the host's rigs use to its program."""
    on = f"on {host}" if host != "local" else "here"
    checks = [
        _tool(host, "tmux", probe.tmux, MIN_TMUX, f"install tmux {_v(MIN_TMUX)} or newer {on} (e.g. apt-get install tmux)"),
        _tool(host, "git", probe.git, MIN_GIT, f"install git {_v(MIN_GIT)} or newer {on} (e.g. apt-get install git)"),
    ]
    if probe.git is not None:
        checks.append(
            HostCheck(f"{host}: git identity", True, "set") if probe.git_identity else HostCheck(
                f"{host}: git identity", False, f"git has no user.name/user.email {on}: agents' commits would fail",
                f'set one {on}: git config --global user.name "Polecat" && git config --global user.email polecat@example.com',
            )
        )
    checks.append(_gt(host, probe.gt, on))
    checks.append(
        HostCheck(f"{host}: python", True, f"python {probe.python}") if probe.python else HostCheck(
            f"{host}: python", False, f"python3 is not installed {on} (agents start through it)", f"install python3 {on}",
        )
    )
    if probe.root is None:
        checks.append(HostCheck(f"{host}: root", False, f"cannot create or write the town's directory {on}",
                                f"set hosts.{host}.root to a directory the SSH user may write"))
    else:
        checks.append(HostCheck(f"{host}: root", True, probe.root))
    for runtime, program in sorted(agents.items()):
        path = probe.agents.get(program)
        if path:
            checks.append(HostCheck(f"{host}: agent {runtime}", True, f"{program} at {path}"))
        else:
            checks.append(HostCheck(
                f"{host}: agent {runtime}", False, f"the agent CLI {program} (runtime {runtime}) is not installed {on}",
                f"install {program} {on} so it is on the SSH user's PATH, or take {host} out of the rigs that use {runtime}",
            ))
    return checks


def _v(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _tool(host: str, tool: str, banner: str | None, minimum: tuple[int, int], fix: str) -> HostCheck:
    name = f"{host}: {tool}"
    if banner is None:
        return HostCheck(name, False, f"{tool} is not installed {'on ' + host if host != 'local' else 'here'}", fix)
    version = version_of(banner)
    if version is None or version < minimum:
        return HostCheck(name, False, f"{banner} is older than {_v(minimum)}", fix)
    return HostCheck(name, True, banner)


def _gt(host: str, banner: str | None, on: str) -> HostCheck:
    name = f"{host}: gt"
    install = f"install gastown {__version__} {on} so `gt` is on the PATH of non-interactive ssh sessions"
    if banner is None:
        return HostCheck(name, False, f"gt is not installed {on} (agents there run `gt done`)", install)
    if version_of(banner) != version_of(__version__):
        return HostCheck(name, False, f"{banner} {on} does not match this gt {__version__}", install)
    return HostCheck(name, True, banner)


def local_probe(agents: Mapping[str, str]) -> Probe:
    """The same facts about this machine (gt is this very installation)."""

    def banner(argv: list[str]) -> str | None:
        if shutil.which(argv[0]) is None:
            return None
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else argv[0]

    identity = shutil.which("git") is not None and subprocess.run(
        ["git", "var", "GIT_COMMITTER_IDENT"], capture_output=True, timeout=10
    ).returncode == 0
    return Probe(
        tmux=banner(["tmux", "-V"]), git=banner(["git", "--version"]), gt=f"gt {__version__}",
        python=".".join(map(str, sys.version_info[:2])), git_identity=identity, root=".",
        agents={program: shutil.which(program) for program in agents.values()},
    )


# Run on an SSH host as `sh -c PROBE_SCRIPT sh <root> <bin dir> <program>...`: one line
# per fact, "<key>\t<value>" (empty value: missing).
PROBE_SCRIPT = r"""
root=$1; bin=$2; shift 2
PATH="$bin:$PATH"; export PATH
case $root in "~/"*) root="$HOME/${root#??}" ;; esac
first() { "$@" 2>&1 | head -n 1; }
has() { command -v "$1" >/dev/null 2>&1; }
printf 'tmux\t%s\n' "$(has tmux && first tmux -V)"
printf 'git\t%s\n' "$(has git && first git --version)"
printf 'gt\t%s\n' "$(has gt && first gt --version)"
printf 'python\t%s\n' "$(has python3 && python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
printf 'identity\t%s\n' "$(has git && git var GIT_COMMITTER_IDENT >/dev/null 2>&1 && echo yes)"
printf 'root\t%s\n' "$(mkdir -p -- "$root" 2>/dev/null && [ -w "$root" ] && cd -- "$root" && pwd -P)"
for program in "$@"; do printf 'agent\t%s\t%s\n' "$program" "$(command -v -- "$program")"; done
"""


def parse_probe(output: str) -> Probe:
    """Parse ``PROBE_SCRIPT``'s output (unknown lines are ignored).

    >>> p = parse_probe("tmux\\ttmux 3.3a\\ngit\\t\\nagent\\tclaude\\t\\nagent\\tsh\\t/bin/sh\\n")
    >>> p.tmux, p.git, p.agents
    ('tmux 3.3a', None, {'claude': None, 'sh': '/bin/sh'})
    """
    facts: dict[str, str | None] = {}
    agents: dict[str, str | None] = {}
    for line in output.splitlines():
        key, _, value = line.partition("\t")
        if key == "agent":
            program, _, path = value.partition("\t")
            agents[program] = path.strip() or None
        else:
            facts[key] = value.strip() or None
    return Probe(
        tmux=facts.get("tmux"), git=facts.get("git"), gt=facts.get("gt"), python=facts.get("python"),
        git_identity=facts.get("identity") == "yes", root=facts.get("root"), agents=agents,
    )

"""The `gt` console script.

Answers ``gt --version`` before anything heavy is imported (it is what scripts and
benchmarks call to check an installation); everything else goes to ``gastown.cli``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        from gastown import __version__

        sys.stdout.write(f"gt {__version__}\n")
        return 0
    if args[:1] == ["_host-op"]:  # the hub's SSH driver, on this host: no CLI to load
        from gastown.hosts.worktree_ops import main as host_op

        return host_op(args[1:])
    from gastown.cli import run

    return run(args)

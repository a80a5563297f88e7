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
    from gastown.cli import run

    return run(args)

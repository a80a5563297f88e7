"""The `gt` command line: one module per command group, loaded on demand.

``run`` first offers a listing to the town's running Mayor (``gastown.cli.relay``), which
answers it with everything already loaded; then to ``gastown.cli.fast``, which runs the everyday
commands (listings, `gt status`, `gt sling`, what agents run) straight from a small table,
without importing typer; anything else, and anything it does not fully understand
(``--help``, a bad value, a typo), goes to the typer app in ``gastown.cli.root``, which
answers exactly as it always did.
"""

from __future__ import annotations


def run(args: list[str]) -> int:
    """Run ``gt ARGS`` and return its exit code."""
    from gastown.cli.relay import relay

    code = relay(args)
    if code is not None:
        return code
    from gastown.cli.fast import run_fast

    code = run_fast(args)
    if code is not None:
        return code
    from gastown.cli.root import run as run_with_typer

    return run_with_typer(args)

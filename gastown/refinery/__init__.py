"""The Refinery: each rig's merge queue, with gates, batches and bisection.

``engine`` runs rounds (``run_once``, ``run_until_empty``, ``recover``); ``plan`` is the
pure batch/bisect state machine; ``gates`` runs the gate commands; ``fixes`` sends
conflicted or failed work back to polecats; ``queue`` holds what `gt mq` and
`gt refinery` show and change; ``settings`` resolves a rig's effective settings.
Heavy modules are imported on use, so importing this package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gastown.refinery.engine import RecoveryReport, Refinery, RoundReport, recover, run_once, run_until_empty

__all__ = ["RecoveryReport", "Refinery", "RoundReport", "recover", "run_once", "run_until_empty"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gastown.refinery import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'gastown.refinery' has no attribute {name!r}")

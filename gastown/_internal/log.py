"""gastown's loggers: silent until a long-running process (the Mayor, `gt serve`) gives
them a handler.

The ``NullHandler`` on ``gastown`` keeps Python's last-resort handler from printing a
module's warnings raw to a command's stderr. It lives here, not in ``gastown/__init__``,
so a command that never logs never imports ``logging`` (~20 ms of every start-up).
"""

from __future__ import annotations

import logging

logging.getLogger("gastown").addHandler(logging.NullHandler())


def logger(name: str) -> logging.Logger:
    """The logger called ``name`` (a ``gastown.*`` name, so the handler above covers it)."""
    return logging.getLogger(name)

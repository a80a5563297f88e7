"""gastown: an orchestrator for fleets of AI coding agents in tmux, with patrols and a merge queue."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

"""gastown: an orchestrator for fleets of AI coding agents in tmux, with patrols and a merge queue."""

__version__ = "0.1.0"

"""Runtimes: how to start each agent CLI and read its screen (``presets``), merged with
the user's ``[agents.*]`` tables (``registry``)."""

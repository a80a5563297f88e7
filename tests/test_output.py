"""The output chokepoint: tables fit a terminal (or cut nothing when piped, or when the
terminal does not say its width), colour only on a terminal and never with NO_COLOR."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest

from gastown.cli import _output

ROWS = [["app-k3x9q", "open", "a title long enough to be cut on a narrow terminal"]]


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def fileno(self) -> int:
        return 1


def printed(monkeypatch: pytest.MonkeyPatch, *, tty: bool, columns: int, env: dict[str, str] | None = None) -> str:
    out = FakeTerminal(tty)
    monkeypatch.setattr(_output.sys, "stdout", out)
    monkeypatch.setattr(_output.os, "get_terminal_size", lambda fd: os.terminal_size((columns, 24)))
    for key in ("NO_COLOR", "COLUMNS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    _output.print_table(["ID", "STATUS", "TITLE"], ROWS)
    return out.getvalue()


@pytest.mark.parametrize(
    ("setting", "cut", "coloured"),
    [
        ({"tty": False, "columns": 30}, False, False),
        ({"tty": True, "columns": 40}, True, True),
        ({"tty": True, "columns": 0}, False, True),
        ({"tty": True, "columns": 0, "env": {"COLUMNS": "40"}}, True, True),
        ({"tty": True, "columns": 200, "env": {"NO_COLOR": "1"}}, False, False),
    ],
    ids=["piped", "terminal", "terminal-without-a-width", "width-from-COLUMNS", "no-color"],
)
def test_tables_fit_the_terminal_they_are_on(monkeypatch: pytest.MonkeyPatch, setting: dict[str, Any], cut: bool,
                                             coloured: bool) -> None:
    out = printed(monkeypatch, **setting)
    assert ("…" in out) is cut
    assert ("\x1b[1m" in out) is coloured
    assert "app-k3x9q" in out and "open" in out
    if cut:
        assert max(len(line) for line in out.replace("\x1b[1m", "").replace("\x1b[0m", "").splitlines()) <= 40

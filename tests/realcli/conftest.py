"""Select which real CLIs run: ``GT_REALCLI=claude,aider`` runs only those, ``GT_REALCLI=0``
none (they are skipped with the reason). Unset: all six.

The real-CLI tests run after every other test (``tests/conftest.py`` orders them), and the
CLIs they need are installed by one background process from the moment collection ends:
on a cold cache the installs (~1.5 min, aider's pip install the longest) overlap with the
rest of the suite instead of adding to it.

Every real-CLI test runs offline: nothing but the fake model server on 127.0.0.1 answers
(``offline_clis``). At most ``TUI_AT_ONCE`` TUI-mode tests run at the same time across the
workers (``tui_slot``): four node TUIs drawing at once on two cores starved one of them
past its waits, while headless runs and the rest of the suite share the other workers.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import run_dir
from tests.realcli.harness import offline_env


def pytest_configure(config: pytest.Config) -> None:
    from tests.realcli.install import use_run_dir

    use_run_dir(run_dir(config))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = os.environ.get("GT_REALCLI", "").strip()
    if not wanted:
        return
    chosen = set() if wanted.lower() in ("0", "no", "off", "none") else {w.strip() for w in wanted.split(",")}
    for item in items:
        cli = _cli_of(item)
        if cli is not None and cli not in chosen:
            item.add_marker(pytest.mark.skip(reason=f"GT_REALCLI={wanted} does not select {cli}"))


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    needed = [cli for item in session.items if not item.get_closest_marker("skip") and (cli := _cli_of(item))]
    if needed:
        from tests.realcli.install import start_background

        start_background(needed, run_dir(session.config))


def _cli_of(item: pytest.Item) -> str | None:
    """The real CLI a real-CLI test drives (None for every other test)."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or item.get_closest_marker("realcli") is None:
        return None
    return callspec.params.get("cli")


@pytest.fixture(autouse=True)
def offline_clis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the real CLIs off the network: a test must not wait on a CLI's update check,
    telemetry or metadata download (aider's took 180 s on a loaded machine).

    The proxy variables point at a port bound on 127.0.0.1 that accepts no connection, so
    whatever still tries to go out fails at once, on loopback; the rest are the CLIs' own
    switches (``harness.offline_env``). Every process the test starts inherits them, the
    agents gastown launches included.
    """
    sink = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sink.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        scratch = tmp_path / "offline"
        scratch.mkdir()
        for key, value in offline_env(f"http://127.0.0.1:{sink.getsockname()[1]}", scratch).items():
            monkeypatch.setenv(key, value)
        yield
    finally:
        sink.close()


TUI_AT_ONCE = 2


@pytest.fixture(autouse=True)
def tui_slot(request: pytest.FixtureRequest) -> Iterator[None]:
    """A TUI-mode real-CLI test waits for one of ``TUI_AT_ONCE`` slots (lock files in the
    run's shared directory); every other test passes straight through."""
    callspec = getattr(request.node, "callspec", None)
    tui = request.node.get_closest_marker("realcli") is not None and (
        callspec is not None and callspec.params.get("mode") == "tui")
    if not tui:
        yield
        return
    slots = [run_dir(request.config) / f"realcli-tui-slot-{n}.lock" for n in range(TUI_AT_ONCE)]
    held = None
    while held is None:
        for path in slots:
            handle = open(path, "a+")  # noqa: SIM115 - held for the whole test
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            held = handle
            break
        else:
            time.sleep(0.5)
    try:
        yield
    finally:
        held.close()

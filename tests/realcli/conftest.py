"""Select which real CLIs run: ``GT_REALCLI=claude,aider`` runs only those, ``GT_REALCLI=0``
none (they are skipped with the reason). Unset: all six.

The real-CLI tests run after every other test, and the CLIs they need are installed in
the background from the moment collection ends: on a cold cache the installs (~1.5 min,
aider's pip install the longest) overlap with the rest of the suite instead of adding to it.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = os.environ.get("GT_REALCLI", "").strip()
    if wanted:
        chosen = set() if wanted.lower() in ("0", "no", "off", "none") else {w.strip() for w in wanted.split(",")}
        for item in items:
            cli = _cli_of(item)
            if cli is not None and cli not in chosen:
                item.add_marker(pytest.mark.skip(reason=f"GT_REALCLI={wanted} does not select {cli}"))
    real = [item for item in items if item.get_closest_marker("realcli")]
    if real and len(real) < len(items):
        items[:] = [item for item in items if not item.get_closest_marker("realcli")] + real


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    needed = [
        cli for item in session.items
        if item.get_closest_marker("realcli") and not item.get_closest_marker("skip")
        and (cli := _cli_of(item)) is not None
    ]
    if needed:
        from tests.realcli.install import prefetch

        prefetch(needed)


def _cli_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("cli") if callspec else None

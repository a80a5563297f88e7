"""Select which real CLIs run: ``GT_REALCLI=claude,aider`` runs only those, ``GT_REALCLI=0``
none (they are skipped with the reason). Unset: all six."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = os.environ.get("GT_REALCLI", "").strip()
    if not wanted:
        return
    chosen = set() if wanted.lower() in ("0", "no", "off", "none") else {w.strip() for w in wanted.split(",")}
    for item in items:
        callspec = getattr(item, "callspec", None)
        cli = callspec.params.get("cli") if callspec else None
        if cli is not None and cli not in chosen:
            item.add_marker(pytest.mark.skip(reason=f"GT_REALCLI={wanted} does not select {cli}"))

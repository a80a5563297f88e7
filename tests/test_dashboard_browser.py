"""The dashboard in a real browser (Playwright driving Debian's Chromium) on a live town
with demo agents: the agents are listed, an event shows up within 2 s without a reload,
a nudge typed into the page reaches the agent's pane, a hostile title stays text and
opens no dialog, a forged POST is refused. Screenshots land in the test's tmp dir."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gastown.context import Context
from gastown.ledger.escalations import raise_escalation
from gastown.town import Town
from tests.dashboard_support import served
from tests.helpers import gt_json, retry_until, run_gt, set_config

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
HOSTILE = "<img src=x onerror=alert(1)>"
# The demo agent does nothing and stays at its prompt: an idle agent to look at and nudge.
IDLE_BODY = "Stay at the prompt.\n\n~~~demo\nnodone\n~~~\n"


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium from Debian's package, never a downloaded one."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, timeout=60_000)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def live_town(rig_town: Path, tmux_socket: str) -> Iterator[Path]:
    """A running town (the Mayor up) whose idle agents are left alone for the test's length."""
    set_config(rig_town, "witness", {"idle_after": "10m", "stall_after": "10m"})
    run_gt("up", cwd=rig_town, check=True)
    try:
        yield rig_town
    finally:
        run_gt("down", "--timeout", "5", cwd=rig_town)


def pane_text(socket: str, pane: str) -> str:
    result = subprocess.run(["tmux", "-L", socket, "capture-pane", "-p", "-J", "-S", "-200", "-t", pane],
                            check=False, capture_output=True, text=True, timeout=10)
    return result.stdout


def test_the_dashboard_shows_a_live_town_and_talks_to_its_agents(
    live_town: Path, browser: Any, tmp_path: Path, tmux_socket: str
) -> None:
    hostile = gt_json("issue", "create", HOSTILE, "--body", IDLE_BODY, cwd=live_town)["id"]
    plain = gt_json("issue", "create", "Add a friendlier greeting", "--body", IDLE_BODY, cwd=live_town)["id"]
    slung = gt_json("sling", hostile, plain, "--agent", "demo", "--no-convoy", cwd=live_town)
    polecat = {r["issue"]: r["polecat"] for r in slung}
    target = f"app/{polecat[plain]}"

    with served(live_town, poll_interval=0.25, refresh_interval=2.0) as (url, _):  # the product's own pace
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        dialogs: list[str] = []
        problems: list[str] = []
        navigations: list[str] = []
        def on_dialog(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)

        page.goto(url + "/")
        page.wait_for_selector("#live[data-state=live]", timeout=30_000)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content", "keyboard first lands on the skip link"
        page.evaluate("document.activeElement.blur()")
        # The page lists the agents (they appear as they start: the table is live).
        for name in polecat.values():
            page.locator("#agents a", has_text=f"app/{name}").wait_for(timeout=60_000)
        titles = page.locator("#agents td.issue .title").all_inner_texts()
        assert HOSTILE in titles, "the hostile title is shown as text"
        assert page.locator("img").count() == 0, "no element was made from the title"

        # An event appears within 2 s, without a reload.
        loaded = len(navigations)
        message = f"the build box is on fire {uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        raise_escalation(Context(Town(live_town)).ledger, message, source="test", severity="high")
        page.locator("#events td.msg", has_text=message).wait_for(timeout=2_000)
        seen_after = time.monotonic() - started
        assert seen_after < 2.0 and len(navigations) == loaded
        page.locator("#side ul.cards li", has_text=message).wait_for(timeout=10_000)
        page.screenshot(path=str(tmp_path / "town.png"), full_page=True)

        # The agent's page, and a nudge typed into it reaching the pane.
        with page.expect_navigation(url=f"{url}/agents/{target}"):
            page.locator("#agents a", has_text=target).click()
        page.wait_for_selector("#live[data-state=live]", timeout=30_000)
        page.locator("#log", has_text="demo").wait_for(timeout=30_000)
        words = f"dashboard says hello {uuid.uuid4().hex[:8]}"
        page.fill("textarea[name=message]", words)
        with page.expect_navigation(url=f"{url}/agents/{target}", timeout=30_000):
            page.get_by_role("button", name="Send nudge").click()
        page.locator("#notices", has_text=f"typing the nudge into {target}").wait_for(timeout=10_000)
        pane = next(a["pane"] for a in gt_json("agents", cwd=live_town) if a["polecat"] == polecat[plain])
        retry_until(lambda: f"got message: {words}" in pane_text(tmux_socket, pane), 90,
                    what="the nudge to reach the agent's pane")
        page.locator("#notices", has_text=f"nudge delivered to {target}").wait_for(timeout=30_000)
        page.locator("#log", has_text=f"got message: {words}").wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "agent.png"), full_page=True)

        # A POST without the CSRF token is refused, though it carries the browser's cookies.
        forged = page.request.post(f"{url}/agents/{target}/nudge", form={"message": "forged " + words})
        assert forged.status == 403
        wrong = page.request.post(f"{url}/agents/{target}/nudge", form={"message": "forged", "csrf": "x" * 43})
        assert wrong.status == 403
        nudges = _nudge_events(live_town)
        assert any(words in m for m in nudges) and not any("forged" in m for m in nudges)
        context.close()

    assert dialogs == [], "no dialog opened"
    assert problems == [], problems
    assert (tmp_path / "town.png").stat().st_size > 10_000 and (tmp_path / "agent.png").stat().st_size > 10_000


def _nudge_events(town: Path) -> list[str]:
    import json

    lines = run_gt("feed", "--plain", "--json", "--once", "-n", "500", cwd=town, check=True).stdout.splitlines()
    return [doc["message"] for doc in map(json.loads, lines) if doc["kind"] == "nudge"]

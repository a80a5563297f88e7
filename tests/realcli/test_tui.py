"""Each real CLI as a TUI in an isolated tmux pane, driven the way gastown drives agents:
wait for the ready marker (no first-run dialog may show: the home is seeded), paste the
prompt as one bracketed paste, press Enter separately, see the busy marker while the
(delayed) fake answers, then idle again with the edit made and the usage recorded.

The markers come from gastown's presets, so this test fails when a CLI release changes
its screen. Set ``GT_REALCLI_SCREENS=<dir>`` to keep the screens seen at each stage.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gastown.runtimes.presets import PRESETS
from gastown.runtimes.usage import read_spawn_usage
from tests.fakes import Script
from tests.helpers import retry_until
from tests.realcli.harness import REAL_HOME_FILES, prepare, tree_digest, usage_for
from tests.realcli.install import ensure_cli
from tests.realcli.tui import Pane, kill_pids, matches, processes_referencing, tail

pytestmark = [pytest.mark.realcli, pytest.mark.slow, pytest.mark.tmux]

CLIS = ["claude", "codex", "gemini", "aider", "opencode", "copilot"]
CONTENT = "print('hello from the fake model')\n"
PROMPT = "Create hello.py that prints a greeting."
DELAY = 5.0  # the fake holds its first (tool-call) response this long: the busy marker must show

# Where the screens seen (versions in tests/realcli/install.py) differ from
# gastown/runtimes/presets.py. Drop an entry once the preset carries the correction.
# (Both earlier ones, opencode's ready and copilot's busy, are in the presets now.)
CORRECTIONS: dict[str, dict[str, str]] = {}


def markers(cli: str) -> tuple[str | None, str | None]:
    """(ready, busy) for ``cli``: the preset's, with the verified corrections applied."""
    fix = CORRECTIONS.get(cli, {})
    return fix.get("ready", PRESETS[cli].ready), fix.get("busy", PRESETS[cli].busy)


def _screen_or_fail_on_dialog(pane: Pane, cli: str) -> str:
    text = pane.capture()
    for dialog in PRESETS[cli].dialogs:
        if matches(dialog.match, tail(text)):
            raise AssertionError(f"{cli} showed a first-run dialog ({dialog.match}) despite the seeded home:\n{text}")
    return text


def _keep(stage: str, cli: str, text: str | None) -> None:
    text = text or ""
    print(f"===== {cli}: {stage} =====\n{text.rstrip()}\n")
    folder = os.environ.get("GT_REALCLI_SCREENS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        Path(folder, f"{cli}-{stage}.txt").write_text(text)


@pytest.mark.parametrize("cli", CLIS)
def test_tui_ready_paste_busy_idle(cli: str, tmp_path: Path, tmux_socket: str) -> None:
    binary = ensure_cli(cli)
    ready_re, busy_re = markers(cli)
    script = Script.edit("hello.py", CONTENT, usage=usage_for(cli), aider_whole=cli == "aider",
                         delays=lambda kind, index: DELAY if (kind, index) == ("tool", 0) else 0.0)
    rig = prepare(cli, binary, tmp_path, script)  # type: ignore[arg-type]
    pane = Pane(tmux_socket)
    started = time.monotonic()
    try:
        pane.start(rig.repo, rig.env, rig.preset_argv())

        def ready() -> str | None:
            text = _screen_or_fail_on_dialog(pane, cli)
            bottom = tail(text)
            return text if matches(ready_re, bottom) and not matches(busy_re, bottom) else None

        _keep("ready", cli, retry_until(ready, timeout=90, interval=0.3, what=f"{cli} ready marker {ready_re!r}"))
        ready_at = time.monotonic()

        pane.paste(PROMPT)
        retry_until(lambda: "prints a greeting" in pane.capture() or "[Pasted text" in pane.capture(),
                    timeout=15, interval=0.2, what="the pasted prompt on screen")
        pane.keys("Enter")

        def busy() -> str | None:
            text = pane.capture()
            return text if rig.fake.log_of("tool") == [] and matches(busy_re, tail(text)) else None

        if busy_re:
            _keep("busy", cli, retry_until(busy, timeout=30, interval=0.2, what=f"{cli} busy marker {busy_re!r}"))
        else:  # aider shows no busy marker: the held request is the evidence the turn started
            retry_until(lambda: rig.fake.in_flight > 0 and not rig.fake.log_of("tool"),
                        timeout=30, interval=0.2, what="aider waiting on the model")
            _keep("busy", cli, pane.capture())

        def idle_with_edit() -> str | None:
            if not (rig.repo / "hello.py").exists() or not rig.fake.log_of("final" if cli != "aider" else "tool"):
                return None
            return ready()

        _keep("idle", cli, retry_until(idle_with_edit, timeout=90, interval=0.3, what=f"{cli} idle after the edit"))
        print(f"{cli}: ready after {ready_at - started:.1f}s, whole test body {time.monotonic() - started:.1f}s")

        assert (rig.repo / "hello.py").read_text() == CONTENT
        expected = rig.fake.usage_of("tool", "final")
        want = {"input": expected.input, "output": expected.output,
                "cache_read": expected.cache_read, "cache_write": expected.cache_write}

        def usage_recorded() -> dict[str, int] | None:
            got = read_spawn_usage(cli, rig.plan.root).tokens()  # type: ignore[arg-type]
            return got if got == want else None

        retry_until(usage_recorded, timeout=15, interval=0.3, what=f"usage {want} on disk")
        assert tree_digest(rig.real_home) == rig.real_home_before
        assert (rig.real_home / "SENTINEL").read_text() == REAL_HOME_FILES["SENTINEL"]
    finally:
        rig.fake.stop()
        pane.tmux("kill-server")
        # What the CLI left running after its pane is gone (codex: an app-server daemon).
        try:
            retry_until(lambda: not processes_referencing(str(rig.plan.root)), timeout=5, interval=0.2)
        except AssertionError:
            leftovers = processes_referencing(str(rig.plan.root))
            print(f"{cli} left processes behind: {leftovers}")
            kill_pids(list(leftovers))
            retry_until(lambda: not processes_referencing(str(rig.plan.root)), timeout=10, what="leftovers gone")

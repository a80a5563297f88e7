"""Each real CLI, headless, against its fake model server: the edit lands in the repo, the
token usage the fake reported is read back exactly from the CLI's own records, and the
user's real home (a stand-in) is left byte for byte as it was.

Run: ``pytest -m realcli tests/realcli/test_headless.py`` (installs the CLIs on first use
into ``.cache/realcli``; skipped when the registries are unreachable).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from gastown.runtimes.usage import read_spawn_usage
from tests.fakes import Script
from tests.realcli.harness import (
    REAL_HOME_FILES,
    headless_argv,
    make_gt_stub,
    prepare,
    tree_digest,
    usage_for,
)
from tests.realcli.install import ensure_cli

pytestmark = [pytest.mark.realcli, pytest.mark.slow]

CLIS = ["claude", "codex", "gemini", "aider", "opencode", "copilot"]
CONTENT = "print('hello from the fake model')\n"
PROMPT = "Create hello.py that prints a greeting."
RUN_TIMEOUT = 240


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, check=False)
    print(f"{argv[0].rsplit('/', 1)[-1]} ran in {time.monotonic() - started:.1f}s (exit {proc.returncode})")
    return proc


def _report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"


@pytest.mark.parametrize("cli", CLIS)
def test_headless_edit_with_exact_usage_and_untouched_home(cli: str, tmp_path: Path) -> None:
    binary = ensure_cli(cli)
    script = Script.edit("hello.py", CONTENT, usage=usage_for(cli), aider_whole=cli == "aider")
    rig = prepare(cli, binary, tmp_path, script)  # type: ignore[arg-type]
    try:
        proc = _run(headless_argv(rig, PROMPT), rig.repo, rig.env)
    finally:
        rig.fake.stop()
    assert proc.returncode == 0, _report(proc)
    assert (rig.repo / "hello.py").read_text() == CONTENT, _report(proc)

    expected = rig.fake.usage_of("tool", "final")
    assert expected.input > 0 and rig.fake.log_of("tool")
    got = read_spawn_usage(cli, rig.plan.root)  # type: ignore[arg-type]
    assert got.tokens() == {"input": expected.input, "output": expected.output,
                            "cache_read": expected.cache_read, "cache_write": expected.cache_write}
    assert got.responses == len(rig.fake.log_of("tool", "final"))

    assert tree_digest(rig.real_home) == rig.real_home_before
    assert (rig.real_home / "SENTINEL").read_text() == REAL_HOME_FILES["SENTINEL"]
    # The API key reached the fake, and no credential of the real home did.
    headers = " ".join(str(r.headers) for r in rig.fake.log if r.kind)
    assert "sk-fake-gastown" in headers and "real-user" not in headers


@pytest.mark.parametrize("cli", [c for c in CLIS if c != "aider"])
def test_headless_agent_commits_and_runs_gt_done(cli: str, tmp_path: Path) -> None:
    """The finishing move of every polecat: commit, then ``gt done`` through the shell tool."""
    binary = ensure_cli(cli)
    calls = tmp_path / "gt-calls.log"
    stub = make_gt_stub(tmp_path / "gtbin", calls)
    script = Script.edit_then_done("hello.py", CONTENT, message="Add hello.py", usage=usage_for(cli))
    rig = prepare(cli, binary, tmp_path, script, extra_path=[stub.parent])  # type: ignore[arg-type]
    try:
        proc = _run(headless_argv(rig, PROMPT), rig.repo, rig.env)
    finally:
        rig.fake.stop()
    assert proc.returncode == 0, _report(proc)
    assert calls.exists() and calls.read_text().splitlines() == [f"{rig.repo}\tdone"], _report(proc)
    log = subprocess.run(["git", "log", "--format=%s", "-n", "1"], cwd=rig.repo, capture_output=True, text=True, check=False)
    assert log.stdout.strip() == "Add hello.py"
    tracked = subprocess.run(["git", "show", "HEAD:hello.py"], cwd=rig.repo, capture_output=True, text=True, check=False)
    assert tracked.stdout == CONTENT
    assert len(rig.fake.log_of("tool")) == 2 and len(rig.fake.log_of("final")) == 1

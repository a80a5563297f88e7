"""Shell completion for real: the scripts `gt --show-completion SHELL` prints, the protocol
they speak with `gt` (run as the shell would run it), and candidates from a temp town."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import gt_json, run_gt

GT = [sys.executable, "-m", "gastown"]


def bash_candidates(words: list[str], cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """What bash's completion function would get: `gt` run with COMP_WORDS/COMP_CWORD."""
    full = {**os.environ, **(env or {}), "_GT_COMPLETE": "complete_bash",
            "COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)}
    result = subprocess.run(GT, cwd=cwd, env=full, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [line for line in result.stdout.splitlines() if line]


def shell_output(shell: str, line: str, cwd: Path) -> str:
    """zsh and fish send the command line so far in _TYPER_COMPLETE_ARGS."""
    env = {**os.environ, "_GT_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line,
           "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    result = subprocess.run(GT, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout


@pytest.fixture
def busy_town(rig_town: Path, upstream: Path) -> dict[str, str]:
    """Issues in several states, a second rig, a polecat with work, a merge request."""
    run_gt("rig", "add", "web", str(upstream), cwd=rig_town, check=True)
    ids = {
        "open": gt_json("issue", "create", "an open one", "--rig", "app", cwd=rig_town)["id"],
        "closed": gt_json("issue", "create", "a closed one", "--rig", "app", cwd=rig_town)["id"],
        "hostile": gt_json("issue", "create", "evil \x1b]0;pwned\x07 title\twith tab", "--rig", "app", cwd=rig_town)["id"],
    }
    run_gt("issue", "close", ids["closed"], cwd=rig_town, check=True)
    from gastown.context import Context
    from gastown.ledger import work
    from gastown.ledger.mrs import record_mr
    from gastown.town import Town

    ctx = Context(Town(rig_town))
    with ctx.ledger.write() as conn:
        work.add_polecat(conn, "app", "ada", ctx.now())
        work.add_polecat(conn, "web", "bob", ctx.now())
        mr, _ = record_mr(conn, rig="app", issue=ids["open"], polecat="ada", spawn=None, branch="polecat/ada/x",
                          commit_sha="1" * 40, target="main", priority=2, fix_cycle=0, now=ctx.now())
    ids["mr"] = mr.id
    return ids


def test_candidates_come_from_the_town(rig_town: Path, busy_town: dict[str, str]) -> None:
    town = rig_town
    assert set(bash_candidates(["gt", "issue", "show", ""], town)) == {busy_town["open"], busy_town["closed"],
                                                                      busy_town["hostile"]}
    assert set(bash_candidates(["gt", "issue", "close", ""], town)) == {busy_town["open"], busy_town["hostile"]}
    assert bash_candidates(["gt", "issue", "reopen", ""], town) == [busy_town["closed"]]
    assert set(bash_candidates(["gt", "sling", "app-"], town)) == {busy_town["open"], busy_town["hostile"]}
    assert set(bash_candidates(["gt", "sling", busy_town["open"], ""], town)) >= {"app", "web", busy_town["hostile"]}
    assert bash_candidates(["gt", "sling", busy_town["open"], "app/"], town) == ["app/ada"]
    assert bash_candidates(["gt", "peek", ""], town) == ["app/ada", "web/bob"]
    assert bash_candidates(["gt", "nudge", "w"], town) == ["web/bob"]
    assert bash_candidates(["gt", "mq", "show", ""], town) == [busy_town["mr"]]
    assert bash_candidates(["gt", "rig", "remove", ""], town) == ["app", "web"]
    assert bash_candidates(["gt", "issue", "list", "--rig", "w"], town) == ["web"]
    assert bash_candidates(["gt", "refinery", "run", ""], town) == ["app", "web"]
    assert bash_candidates(["gt", "mail", "send", ""], town) == ["mayor", "human", "app/ada", "web/bob"]
    assert bash_candidates(["gt", "costs", "--by", "r"], town) == ["rig", "runtime", "role"]
    assert "issue" in bash_candidates(["gt", "iss"], town) and "sling" in bash_candidates(["gt", "sl"], town)


def test_town_named_on_the_line_or_in_the_environment(rig_town: Path, busy_town: dict[str, str], tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert bash_candidates(["gt", "--town", str(rig_town), "peek", ""], elsewhere) == ["app/ada", "web/bob"]
    assert bash_candidates(["gt", "peek", "--town", str(rig_town), ""], elsewhere) == ["app/ada", "web/bob"]
    assert bash_candidates(["gt", "peek", ""], elsewhere, env={"GT_TOWN": str(rig_town)}) == ["app/ada", "web/bob"]


def test_no_town_or_a_broken_one_completes_nothing_and_says_nothing(tmp_path: Path) -> None:
    assert bash_candidates(["gt", "issue", "show", ""], tmp_path) == []
    town = tmp_path / "town"
    run_gt("init", str(town), check=True)
    (town / "gastown.toml").write_text("[[[ broken\n")
    (town / ".gastown" / "ledger.db").write_bytes(b"not a database")
    for words in (["gt", "issue", "show", ""], ["gt", "rig", "remove", ""], ["gt", "peek", ""]):
        assert bash_candidates(words, town) == []


def test_zsh_and_fish_get_descriptions_made_safe(rig_town: Path, busy_town: dict[str, str]) -> None:
    zsh = shell_output("zsh", "gt issue show ", rig_town)
    fish = shell_output("fish", "gt issue show ", rig_town)
    for out in (zsh, fish):
        assert busy_town["hostile"] in out and "\\x1b]0;pwned\\x07" in out
        assert "\x1b" not in out and "\x07" not in out
    assert f"{busy_town['open']}\topen: an open one" in fish.splitlines()
    assert "title with tab" in fish, "a tab in a title must not split fish's value<TAB>help"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_bash_script_loads_and_completes_in_bash(rig_town: Path, busy_town: dict[str, str]) -> None:
    script = run_gt("--show-completion", "bash", check=True).stdout
    assert "complete -o default -F _gt_completion gt" in script
    gt_dir = rig_town / "bin"
    gt_dir.mkdir()
    (gt_dir / "gt").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gastown "$@"\n')
    (gt_dir / "gt").chmod(0o755)
    session = (
        f"{script}\n"
        "complete -p gt\n"
        'COMP_WORDS=(gt mq show ""); COMP_CWORD=3\n'
        "_gt_completion gt\n"
        'printf "candidate=%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", session], cwd=rig_town, capture_output=True,
                            text=True, env={**os.environ, "PATH": f"{gt_dir}:{os.environ['PATH']}"}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "complete -o default -F _gt_completion gt" in result.stdout
    assert f"candidate={busy_town['mr']}" in result.stdout.splitlines()


def test_show_completion_for_each_shell_and_a_clear_error_for_others(tmp_path: Path) -> None:
    zsh = run_gt("--show-completion", "zsh", cwd=tmp_path, check=True).stdout
    fish = run_gt("--show-completion", "fish", cwd=tmp_path, check=True).stdout
    assert "#compdef gt" in zsh and "_GT_COMPLETE=complete_zsh" in zsh
    assert "complete --command gt" in fish and "_GT_COMPLETE=complete_fish" in fish
    bad = run_gt("--show-completion", "tcsh", cwd=tmp_path)
    assert bad.returncode == 2 and "bash, zsh and fish" in bad.stderr and "Traceback" not in bad.stderr


def test_install_completion_writes_into_the_home_it_is_given(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    result = run_gt("--install-completion", cwd=tmp_path, env={"HOME": str(home), "SHELL": "/bin/bash"})
    assert result.returncode == 0, result.stderr
    shell = result.stdout.split()[0]
    assert shell in ("bash", "zsh", "fish") and "installed in" in result.stdout
    if shell == "bash":
        assert (home / ".bash_completions" / "gt.sh").read_text().strip().endswith("_gt_completion gt")
        assert "source" in (home / ".bashrc").read_text()

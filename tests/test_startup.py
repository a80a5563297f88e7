"""The CLI start-up path stays light: help, listings, `gt status` and `gt agents` import
none of pydantic (the config is cached), rich (tables are plain), GitPython (gone),
libtmux or httpx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("git", "libtmux", "httpx", "pydantic", "rich", "tomlkit")
PROBE = f"""
import json, sys
from gastown._entry import main
code = main(sys.argv[1:])
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))
sys.stderr.write('HEAVY=' + json.dumps(heavy) + '\\n')
sys.exit(code)
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["issue", "--help"], ["issue", "list"], ["issue", "list", "--json"], ["status"],
     ["status", "--json"], ["agents"], ["mq", "list"], ["convoy", "list"], ["mail", "inbox"], ["escalate", "list"],
     ["feed", "--plain", "--once"], ["polecat", "list"]],
    ids=lambda args: "-".join(a.strip("-") for a in args),
)
def test_startup_path_imports_nothing_heavy(rig_town: Path, args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=rig_town, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stderr.splitlines() if l.startswith("HEAVY="))
    assert json.loads(line.removeprefix("HEAVY=")) == []


def test_version_fast_path_prints_version() -> None:
    from gastown import __version__

    out = subprocess.run([sys.executable, "-m", "gastown", "--version"], capture_output=True, text=True).stdout
    assert out == f"gt {__version__}\n"

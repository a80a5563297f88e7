"""The CLI start-up path stays light: no GitPython, libtmux or httpx for help and listings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("git", "libtmux", "httpx")
PROBE = """
import json, sys
from gastown._entry import main
code = main(sys.argv[1:])
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'git', 'libtmux', 'httpx'})
sys.stderr.write('HEAVY=' + json.dumps(heavy) + '\\n')
"""


@pytest.mark.parametrize("args", [["--help"], ["issue", "list"], ["issue", "--help"], ["--version"]])
def test_startup_path_imports_nothing_heavy(rig_town: Path, args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=rig_town, capture_output=True, text=True)
    line = next(l for l in result.stderr.splitlines() if l.startswith("HEAVY="))
    assert json.loads(line.removeprefix("HEAVY=")) == []


def test_version_fast_path_prints_version() -> None:
    from gastown import __version__

    out = subprocess.run([sys.executable, "-m", "gastown", "--version"], capture_output=True, text=True).stdout
    assert out == f"gt {__version__}\n"

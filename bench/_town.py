"""Shared set-up for the benchmarks: a throwaway town on its own tmux socket."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@gastown.invalid",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@gastown.invalid"}


def git(cwd: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, text=True, check=True,
                         env={**os.environ, **IDENTITY, **(env or {})})
    return out.stdout.strip()


def make_upstream(root: Path) -> Path:
    """A bare repository ``root/up.git`` whose ``main`` holds one commit."""
    up, work = root / "up.git", root / "up-work"
    git(root, "init", "-q", "--bare", "-b", "main", str(up))
    git(root, "init", "-q", "-b", "main", str(work))
    (work / "README.md").write_text("bench\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "init")
    git(work, "push", "-q", str(up), "HEAD:main")
    return up


@contextmanager
def bench_town(extra_toml: str = "") -> Iterator[Path]:
    """A town with rig ``app`` (from a fresh local upstream) on a private tmux socket,
    removed (server killed) afterwards."""
    socket = f"gt-bench-{uuid.uuid4().hex[:8]}"
    os.environ["GT_TMUX_SOCKET"] = socket
    for name, value in IDENTITY.items():
        os.environ.setdefault(name, value)
    with tempfile.TemporaryDirectory(prefix="gt-bench-") as tmp:
        root = Path(tmp)
        up = make_upstream(root)
        town = root / "town"
        gt = [sys.executable, "-m", "gastown"]
        subprocess.run([*gt, "init", str(town)], check=True, capture_output=True)
        subprocess.run([*gt, "rig", "add", "app", str(up)], cwd=town, check=True, capture_output=True)
        config = town / "gastown.toml"
        text = config.read_text().replace("# max_polecats = 12 ", "max_polecats = 100")
        config.write_text(text + extra_toml)
        try:
            yield town
        finally:
            from gastown.tmux.driver import Tmux

            Tmux(socket).kill_server()


def machine() -> str:
    return f"{os.uname().machine}, {os.cpu_count()} cpus, Python {sys.version.split()[0]}"

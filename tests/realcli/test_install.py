"""How the processes of one test run share the real-CLI installs (no CLI is installed here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import retry_until
from tests.realcli import install


def test_a_second_worker_does_not_start_another_background_install(tmp_path: Path) -> None:
    (tmp_path / "realcli-install.pid").write_text("12345\n")  # another worker's
    assert install.start_background(["claude", "aider"], tmp_path) is False
    assert (tmp_path / "realcli-install.pid").read_text() == "12345\n"
    assert not (tmp_path / "realcli-install.log").exists()


def test_nothing_starts_for_names_that_are_not_real_clis(tmp_path: Path) -> None:
    assert install.start_background(["demo", "nonesuch"], tmp_path) is False
    assert not (tmp_path / "realcli-install.pid").exists()


def test_an_unreachable_registry_is_tried_once_per_run(tmp_path: Path) -> None:
    """Once one process of the run found the registry unreachable, the others skip at once
    (without it, every test of that CLI would wait for its own installer to time out)."""
    marker = tmp_path / "realcli-unreachable-claude"
    marker.write_text("getaddrinfo ENOTFOUND registry.npmjs.org\n")
    with pytest.raises(install.RegistryUnreachable, match="ENOTFOUND"):
        install.install("claude", cache=tmp_path / "cache", unreachable=marker, timeout=1)
    assert not (tmp_path / "cache" / "claude").exists()  # no install was attempted


def test_stopping_spares_a_process_that_is_not_the_runs_installer(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        (tmp_path / "realcli-install.pid").write_text(f"{bystander.pid}\n")
        install.stop_background(tmp_path)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_stopping_ends_the_runs_installer_and_its_children(tmp_path: Path) -> None:
    """Started like start_background starts it (own session, run dir in its argv)."""
    fake = f"import subprocess, sys, time; subprocess.Popen(['sleep', '60']); time.sleep(60)  # tests.realcli.install {tmp_path}"
    installer = subprocess.Popen([sys.executable, "-c", fake], start_new_session=True)
    (tmp_path / "realcli-install.pid").write_text(f"{installer.pid}\n")
    retry_until(lambda: _children(installer.pid), timeout=30, what="the installer's child")
    child = _children(installer.pid)[0]
    install.stop_background(tmp_path)
    assert installer.wait(timeout=30) != 0
    retry_until(lambda: not _alive(child), timeout=30, what="its child to end")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_offline_environment_reaches_the_tests_here() -> None:
    """tests/realcli/conftest.py: every test in this directory runs with the CLIs offline."""
    assert os.environ["HTTPS_PROXY"].startswith("http://127.0.0.1:")
    assert os.environ["NO_PROXY"] == "127.0.0.1,localhost"
    assert Path(os.environ["AIDER_MODEL_METADATA_FILE"]).is_file()

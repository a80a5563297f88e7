"""Install the real agent CLIs on demand into a cache outside HOME, pinned.

The cache is ``<repo>/.cache/realcli`` unless ``GT_REALCLI_CACHE`` names another
directory; nothing in it belongs in git. Each CLI gets its own prefix (npm) or venv
(aider), so one broken install never spoils another. Installing is idempotent: a
``.installed.json`` stamp records the version, and a matching stamp plus an existing
binary means "already there". A file lock per CLI makes concurrent test processes
wait for one installer instead of racing.

``ensure_cli`` is the pytest-facing entry: it skips the test (with the reason) when the
registry cannot be reached, and fails it when the registry answered but the install
broke (that is a real regression worth seeing). Run as a script to pre-install::

    python -m tests.realcli.install claude aider      # or: all

In a test run the CLIs are installed by one background process per run, started by the
first xdist worker to finish collecting (``start_background``) and stopped by the
controller when the run ends (``stop_background``). It and the workers coordinate through
the run directory every worker shares: its pid file (so it starts once, not once per
worker) and one marker per CLI whose registry was unreachable (so that CLI is tried once
per run and its tests skip at once).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 900.0


@dataclass(frozen=True)
class CliPackage:
    name: str
    kind: Literal["npm", "pip"]
    package: str
    version: str
    binary: str


# Pins: the versions verified in shared/reference/runtimes.md §2 (claude-code: the
# registry's `latest` is newer, but 2.1.197 is the one these tests were written against).
PACKAGES: dict[str, CliPackage] = {
    "claude": CliPackage("claude", "npm", "@anthropic-ai/claude-code", "2.1.197", "claude"),
    "codex": CliPackage("codex", "npm", "@openai/codex", "0.169.0", "codex"),
    "gemini": CliPackage("gemini", "npm", "@google/gemini-cli", "0.61.0", "gemini"),
    "opencode": CliPackage("opencode", "npm", "opencode-ai", "1.18.33", "opencode"),
    "copilot": CliPackage("copilot", "npm", "@github/copilot", "1.0.102", "copilot"),
    "aider": CliPackage("aider", "pip", "aider-chat", "0.86.2", "aider"),
}

# Output that means "could not talk to the registry" rather than "the package is broken".
_UNREACHABLE = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|"
    r"network request to .* failed|NewConnectionError|Max retries exceeded|"
    r"Temporary failure in name resolution|Network is unreachable|Connection refused",
    re.IGNORECASE,
)


class RegistryUnreachable(Exception):
    """The package registry did not answer; the caller should skip, not fail."""


class InstallFailed(Exception):
    """The registry answered but the install did not produce a working binary."""


def cache_root() -> Path:
    """``$GT_REALCLI_CACHE`` or ``<repo>/.cache/realcli``, as an absolute path."""
    configured = os.environ.get("GT_REALCLI_CACHE")
    return Path(configured).expanduser().resolve() if configured else REPO / ".cache" / "realcli"


def binary_path(name: str, cache: Path | None = None) -> Path:
    """Where ``name``'s executable lands once installed (it may not exist yet)."""
    pkg = PACKAGES[name]
    prefix = (cache or cache_root()) / name
    if pkg.kind == "npm":
        return prefix / "node_modules" / ".bin" / pkg.binary
    return prefix / "venv" / "bin" / pkg.binary


def installed_stamp(name: str, cache: Path | None = None) -> dict[str, object] | None:
    """The stamp of a finished install (version, seconds it took), or None."""
    stamp = (cache or cache_root()) / name / ".installed.json"
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def install(
    name: str, *, cache: Path | None = None, timeout: float = INSTALL_TIMEOUT,
    environ: dict[str, str] | None = None, nice: int = 0, unreachable: Path | None = None,
) -> Path:
    """Install CLI ``name`` at its pinned version (idempotent) and return its absolute binary.

    ``environ`` is the environment the installer runs in (default: this process's);
    ``nice`` lowers its CPU priority (background installs). ``unreachable`` is a marker
    file shared by the processes of one test run: once an install found the registry
    unreachable (and wrote it), the others raise at once instead of trying again.

    Raises ``RegistryUnreachable`` when the registry cannot be reached, ``InstallFailed``
    when it was reached but the result is unusable, ``KeyError`` for an unknown name.
    """
    pkg = PACKAGES[name]
    root = cache or cache_root()
    prefix = root / name
    binary = binary_path(name, root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".{name}.lock"):
        stamp = installed_stamp(name, root)
        if stamp and stamp.get("version") == pkg.version and binary.exists():
            return binary
        if unreachable is not None and unreachable.exists():
            raise RegistryUnreachable(unreachable.read_text().strip() or "found unreachable earlier in this run")
        if prefix.exists():
            shutil.rmtree(prefix)
        prefix.mkdir(parents=True)
        started = time.monotonic()
        try:
            for argv, env in _install_steps(pkg, prefix, root, environ):
                _run_step(argv, env, timeout, pkg, nice)
        except RegistryUnreachable as exc:
            if unreachable is not None:
                unreachable.write_text(f"{exc}\n")
            raise
        seconds = round(time.monotonic() - started, 1)
        if not binary.exists():
            raise InstallFailed(f"{pkg.package}@{pkg.version} installed but {binary} is missing")
        (prefix / ".installed.json").write_text(
            json.dumps({"package": pkg.package, "version": pkg.version, "seconds": seconds}) + "\n"
        )
    return binary


def ensure_cli(name: str) -> Path:
    """pytest entry: the installed binary, or skip the test when the registry is unreachable.

    Waits for the run's background install of ``name`` if it is under way (the per-CLI
    lock), and installs it in the foreground otherwise. The installer gets the
    environment this process started with (tests point the CLIs at a dead proxy to keep
    them offline; the installer must reach the registry) with the test's HOME.
    """
    import pytest

    if name in PACKAGES and PACKAGES[name].kind == "npm" and shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    try:
        return install(name, environ={**_ENVIRON_AT_START, "HOME": os.environ["HOME"]},
                       unreachable=_unreachable_marker(_RUN_DIR, name))
    except RegistryUnreachable as exc:
        pytest.skip(f"cannot install {name}: registry unreachable ({exc})")
    except InstallFailed as exc:
        pytest.fail(f"installing {name} failed: {exc}")


# This process's environment before any test changed it (see ensure_cli).
_ENVIRON_AT_START = dict(os.environ)
# The test run's shared directory (``use_run_dir``); None outside a test run.
_RUN_DIR: Path | None = None
_PIDFILE = "realcli-install.pid"


def use_run_dir(run_dir: Path) -> None:
    """Coordinate with the other processes of this test run through ``run_dir``."""
    global _RUN_DIR
    _RUN_DIR = run_dir


def _unreachable_marker(run_dir: Path | None, name: str) -> Path | None:
    return run_dir / f"realcli-unreachable-{name}" if run_dir is not None else None


def start_background(names: list[str], run_dir: Path) -> bool:
    """Install ``names`` in one background process for the whole run; False if one was
    already started (by another xdist worker). The process is niced, in its own session,
    logs to ``run_dir/realcli-install.log`` and gets a private temporary HOME. Tests that
    need a CLI still being installed wait for it on its lock (``ensure_cli``).
    """
    wanted = [n for n in dict.fromkeys(names) if n in PACKAGES]
    if not wanted:
        return False
    try:
        fd = os.open(run_dir / _PIDFILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as pidfile, (run_dir / "realcli-install.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.realcli.install", "--background", str(run_dir), *wanted],
            cwd=REPO, env=dict(_ENVIRON_AT_START), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,
        )
        pidfile.write(f"{proc.pid}\n")
    return True


def stop_background(run_dir: Path) -> None:
    """Stop the run's background install (its whole session) if it still runs."""
    try:
        pid = int((run_dir / _PIDFILE).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"tests.realcli.install" not in cmdline or str(run_dir).encode() not in cmdline:
        return  # not ours (it ended and the pid was reused)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _install_in_background(run_dir: Path, names: list[str]) -> None:
    """The background process: npm packages one after another on one thread, pip packages
    on another, niced, with a private HOME (nothing may touch the real one)."""
    os.nice(10)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # clean up HOME too
    home = tempfile.mkdtemp(prefix="gt-realcli-install-")
    environ = {**os.environ, "HOME": home}
    cache = cache_root()

    def run(group: list[str]) -> None:
        for name in group:
            started = time.monotonic()
            try:
                install(name, cache=cache, environ=environ, unreachable=_unreachable_marker(run_dir, name))
                print(f"{name}: ready after {time.monotonic() - started:.1f}s", flush=True)
            except Exception as exc:  # noqa: BLE001 - ensure_cli installs again and reports it
                print(f"{name}: {type(exc).__name__}: {exc}", flush=True)

    threads = []
    try:
        for kind in ("pip", "npm"):
            group = [n for n in names if PACKAGES[n].kind == kind]
            if kind == "npm" and shutil.which("npm") is None:
                group = []
            if group:
                thread = threading.Thread(target=run, args=(group,), name=f"realcli-install-{kind}")
                thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _install_steps(
    pkg: CliPackage, prefix: Path, root: Path, environ: dict[str, str] | None = None
) -> list[tuple[list[str], dict[str, str]]]:
    source = os.environ if environ is None else environ
    env = {k: v for k, v in source.items() if not k.startswith(("npm_config_", "PIP_"))}
    if pkg.kind == "npm":
        # npm's cache lives beside the installs, not in the (per-test, temporary) HOME.
        env |= {"npm_config_cache": str(root / "_npm"), "npm_config_update_notifier": "false",
                "npm_config_fund": "false", "npm_config_audit": "false"}
        return [(["npm", "install", "--no-save", "--prefix", str(prefix), f"{pkg.package}@{pkg.version}"], env)]
    env |= {"PIP_CACHE_DIR": str(root / "_pip"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    venv = prefix / "venv"
    return [
        ([sys.executable, "-m", "venv", str(venv)], env),
        ([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{pkg.package}=={pkg.version}"], env),
    ]


def _run_step(argv: list[str], env: dict[str, str], timeout: float, pkg: CliPackage, nice: int = 0) -> None:
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              check=False, preexec_fn=(lambda: os.nice(nice)) if nice else None)
    except subprocess.TimeoutExpired:
        raise RegistryUnreachable(f"{argv[0]} timed out after {timeout:.0f}s") from None
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode == 0:
        return
    if _UNREACHABLE.search(output):
        raise RegistryUnreachable(_last_lines(output))
    raise InstallFailed(f"{' '.join(argv[:4])} exited {proc.returncode}: {_last_lines(output)}")


def _last_lines(text: str, n: int = 3) -> str:
    return " | ".join(text.splitlines()[-n:])


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--background"]:
        _install_in_background(Path(argv[1]), argv[2:])
        return 0
    names = list(PACKAGES) if argv in ([], ["all"]) else argv
    status = 0
    for name in names:
        started = time.monotonic()
        try:
            path = install(name)
        except (RegistryUnreachable, InstallFailed) as exc:
            print(f"{name}: FAILED {exc}", file=sys.stderr)
            status = 1
            continue
        stamp = installed_stamp(name) or {}
        print(f"{name}: {path} (version {stamp.get('version')}, install {stamp.get('seconds')}s, "
              f"this call {time.monotonic() - started:.1f}s)")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

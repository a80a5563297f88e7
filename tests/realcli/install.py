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
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import re
import shutil
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
    environ: dict[str, str] | None = None, nice: int = 0,
) -> Path:
    """Install CLI ``name`` at its pinned version (idempotent) and return its absolute binary.

    ``environ`` is the environment the installer runs in (default: this process's);
    ``nice`` lowers its CPU priority (background installs).

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
        if prefix.exists():
            shutil.rmtree(prefix)
        prefix.mkdir(parents=True)
        started = time.monotonic()
        for argv, env in _install_steps(pkg, prefix, root, environ):
            _run_step(argv, env, timeout, pkg, nice)
        seconds = round(time.monotonic() - started, 1)
        if not binary.exists():
            raise InstallFailed(f"{pkg.package}@{pkg.version} installed but {binary} is missing")
        (prefix / ".installed.json").write_text(
            json.dumps({"package": pkg.package, "version": pkg.version, "seconds": seconds}) + "\n"
        )
    return binary


def ensure_cli(name: str) -> Path:
    """pytest entry: the installed binary, or skip the test when the registry is unreachable."""
    import pytest

    if name in PACKAGES and PACKAGES[name].kind == "npm" and shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    unreachable = _PREFETCH_UNREACHABLE.get(name)
    if unreachable is not None:
        pytest.skip(f"cannot install {name}: registry unreachable ({unreachable})")
    try:
        return install(name)
    except RegistryUnreachable as exc:
        pytest.skip(f"cannot install {name}: registry unreachable ({exc})")
    except InstallFailed as exc:
        pytest.fail(f"installing {name} failed: {exc}")


# CLIs whose background install found the registry unreachable: their tests skip at once.
_PREFETCH_UNREACHABLE: dict[str, str] = {}


def prefetch(names: list[str]) -> list[threading.Thread]:
    """Install ``names`` in the background (niced): npm packages one after another on one
    thread, pip packages on another. A test that needs a CLI still being installed waits
    for it on the per-CLI lock (``ensure_cli``); failures are left for ``ensure_cli`` to
    report, except an unreachable registry, which makes its tests skip without retrying.

    The installers get a snapshot of this environment with a private, temporary HOME
    (tests change ``os.environ`` while these threads run; nothing may touch the real HOME).
    """
    environ = dict(os.environ)
    environ["HOME"] = tempfile.mkdtemp(prefix="gt-realcli-install-")
    atexit.register(shutil.rmtree, environ["HOME"], True)
    cache = cache_root()

    def run(group: list[str]) -> None:
        for name in group:
            try:
                install(name, cache=cache, environ=environ, nice=10)
            except RegistryUnreachable as exc:
                _PREFETCH_UNREACHABLE[name] = str(exc)
            except Exception:  # noqa: BLE001 - ensure_cli installs again and reports it
                pass

    threads = []
    for kind in ("pip", "npm"):
        group = [n for n in dict.fromkeys(names) if n in PACKAGES and PACKAGES[n].kind == kind]
        if kind == "npm" and shutil.which("npm") is None:
            group = []
        if group:
            thread = threading.Thread(target=run, args=(group,), name=f"realcli-install-{kind}", daemon=True)
            thread.start()
            threads.append(thread)
    return threads


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

"""Shared set-up for driving the real CLIs: a scratch repo, a real-home stand-in, a seeded
spawn home, the fake server, and the argv/env each CLI needs (from gastown's presets and
``gastown.runtimes.homes``)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gastown.roles.launch import UNSET_FOR_AGENTS
from gastown.runtimes.homes import CliKind, Family, HomePlan, ModelEndpoint, plan_home, spawn_env, write_home
from gastown.runtimes.presets import PRESETS
from tests.fakes import FAKES, FakeServer, Script, Usage

API_KEY_ENV = "GT_FAKE_API_KEY"
API_KEY = "sk-fake-gastown-0123456789abcdef"

FAMILY: dict[str, Family] = {
    "claude": "anthropic",
    "codex": "openai-responses",
    "gemini": "gemini",
    "aider": "openai-chat",
    "opencode": "openai-chat",
    "copilot": "openai-chat",
}

# Files a user's real home might hold; the stand-in gets fake copies so a test can prove
# none of them is read into a spawn with an endpoint, nor changed.
REAL_HOME_FILES = {
    "SENTINEL": "do not touch\n",
    ".claude/.credentials.json": '{"claudeAiOauth": {"accessToken": "real-user-token"}}\n',
    ".claude/settings.json": '{"theme": "light"}\n',
    ".codex/auth.json": '{"OPENAI_API_KEY": "real-user-key"}\n',
    ".gemini/settings.json": '{"security": {"auth": {"selectedType": "oauth-personal"}}}\n',
    ".copilot/config.json": '{"trustedFolders": []}\n',
    ".gitconfig": "[user]\n\tname = Real User\n\temail = real@example.invalid\n",
}


def offline_env(sink: str, scratch: Path) -> dict[str, str]:
    """The environment that keeps every real CLI off the network in a test.

    ``sink`` is a URL on 127.0.0.1 where nothing accepts connections: whatever honours the
    proxy variables (codex's plugin sync, aider's and git's HTTP, Bun's fetch in claude and
    opencode) fails there at once instead of reaching out, or waiting on retries when
    there is no network. Where a CLI would still go out, or would wait, its own switch:

    - aider looks up the model's metadata (context window, prices) and, finding none for
      the fake's model, downloads litellm's whole price list on every call: it reads it
      from ``AIDER_MODEL_METADATA_FILE`` instead; no update check, analytics or release
      notes (its preset passes these flags too, the headless tests run other argv);
    - opencode fetches its model catalogue (models.dev) and installs provider packages
      with its embedded npm: catalogue off, npm's registry is the sink, no retries;
    - claude, gemini and copilot: gastown's presets and homes already switch off their
      update checks and telemetry (``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC``,
      gemini's settings, ``COPILOT_OFFLINE``); no traffic was seen from them with these.

    Verified by running the real-CLI tests in a network namespace with only loopback,
    its resolver answering on loopback: no name was looked up.
    """
    metadata = scratch / "aider-model-metadata.json"
    metadata.write_text(json.dumps({
        f"openai/{FAKES['aider'].model_name}": {
            "max_input_tokens": 128000, "max_output_tokens": 16384, "max_tokens": 16384,
            "input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "openai", "mode": "chat",
        },
    }))
    proxies = {name: sink for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")}
    return {
        **proxies,
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "AIDER_MODEL_METADATA_FILE": str(metadata), "AIDER_CHECK_UPDATE": "false",
        "AIDER_ANALYTICS_DISABLE": "true", "AIDER_SHOW_RELEASE_NOTES": "false",
        "OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "npm_config_registry": f"{sink}/", "npm_config_fetch_retries": "0",
    }


def usage_for(cli: str) -> Callable[[str, int], Usage]:
    """Per-response token numbers the fake reports to ``cli``, distinct per kind and index.

    Only the Anthropic and Responses wires can say "cache write", and aider logs no
    cache split for OpenAI-compatible models, so those fields stay 0 where they would
    not survive the trip.
    """
    writes = FAMILY[cli] in ("anthropic", "openai-responses")
    reads = cli != "aider"

    def usage(kind: str, index: int) -> Usage:
        if kind == "side":
            return Usage(input=7 + index, output=3)
        base = {"tool": 1000, "final": 1500, "wait": 2000}[kind]
        return Usage(input=base + 100 * index, output=40 + 10 * index + (5 if kind == "final" else 0),
                     cache_read=(200 + index) if reads else 0, cache_write=(30 + index) if writes else 0)

    return usage


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its content (to prove nothing changed)."""
    digest: dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            digest[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "README.md").write_text("# scratch project\n")
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "initial commit"], cwd=path, check=True)
    return path.resolve()


def make_real_home(path: Path) -> Path:
    for rel, content in REAL_HOME_FILES.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return path.resolve()


@dataclass
class Rig:
    """One prepared run: repo, homes, fake, and the environment for the CLI."""

    cli: CliKind
    binary: Path
    repo: Path
    real_home: Path
    plan: HomePlan
    fake: FakeServer
    env: dict[str, str]
    real_home_before: dict[str, str] = field(default_factory=dict)

    def preset_argv(self) -> list[str]:
        """The preset's command with the installed binary and the plan's extra args (no prompt:
        arguments carrying ``{prompt}``, such as opencode's ``--prompt={prompt}``, are left out)."""
        command = [a for a in PRESETS[self.cli].command if "{prompt" not in a]
        return [str(self.binary), *command[1:], *self.plan.args]


def prepare(cli: CliKind, binary: Path, tmp: Path, script: Script, extra_path: list[Path] | None = None) -> Rig:
    """Build everything for one run; the fake is started (the caller stops it)."""
    repo = make_repo(tmp / "repo")
    real_home = make_real_home(tmp / "realhome")
    fake = FAKES[cli](script).start()
    fake_base = fake.base_url + ("/v1" if FAMILY[cli].startswith("openai") else "")
    endpoint = ModelEndpoint(family=FAMILY[cli], base_url=fake_base, model=fake.model, api_key_env=API_KEY_ENV)
    spawn_root = (tmp / "town" / ".gastown" / "homes" / "spawn-1").resolve()
    plan = plan_home(cli, spawn_root, repo, real_home, endpoint, as_root=os.geteuid() == 0,
                     git_identity=("Gastown Polecat", "polecat@gastown.invalid"))
    write_home(plan)
    base = {k: v for k, v in os.environ.items() if k not in UNSET_FOR_AGENTS}  # as gastown launches agents
    base["HOME"] = str(real_home)  # the CLI must not write here
    base[API_KEY_ENV] = API_KEY
    path_parts = [str(p) for p in (extra_path or [])] + [str(binary.parent), base.get("PATH", "")]
    base["PATH"] = os.pathsep.join(path_parts)
    env = spawn_env(plan, base)
    env.update(PRESETS[cli].env)
    return Rig(cli, binary, repo, real_home, plan, fake, env, tree_digest(real_home))


def headless_argv(rig: Rig, prompt: str) -> list[str]:
    """Each CLI's one-shot mode: run the prompt to the end, then exit (stdin is /dev/null)."""
    preset = rig.preset_argv()
    if rig.cli == "claude":
        return [*preset, "-p", prompt, "--output-format", "json"]
    if rig.cli == "codex":  # exec takes the bypass flag after the subcommand
        return [str(rig.binary), "exec", *preset[1:], prompt]
    if rig.cli == "opencode":
        return [*preset, "run", prompt]
    if rig.cli == "aider":
        return [*preset, "--edit-format", "whole", "--message", prompt]
    return [*preset, "-p", prompt]  # gemini, copilot


def make_gt_stub(bin_dir: Path, calls: Path) -> Path:
    """A stand-in ``gt`` that records where and how it was run (one line per call)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    stub = bin_dir / "gt"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\t%s\\n" "$(pwd -P)" "$*" >> "{calls}"\necho "gt: work submitted"\n')
    stub.chmod(0o755)
    return stub

"""Shared set-up for the real-CLI tests: the fake API key, a real-home stand-in and its
digest, the usage each CLI's fake reports, and the environment that keeps the CLIs offline."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from gastown.runtimes.homes import Family
from tests.fakes import FAKES, Usage

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


def make_real_home(path: Path) -> Path:
    for rel, content in REAL_HOME_FILES.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return path.resolve()

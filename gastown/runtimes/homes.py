"""Per-spawn agent homes: a private config directory for each agent run, pre-seeded.

Every spawn gets its own directory (``<town>/.gastown/homes/<spawn>/``) that plays the
CLI's home: ``CLAUDE_CONFIG_DIR``, ``CODEX_HOME`` and ``COPILOT_HOME`` point inside it;
gemini, aider and opencode get it as ``HOME`` (plus the XDG dirs). It is seeded so no
first-run screen shows (onboarding, theme, trust, bypass warning), carries over the few
files of the user's real home a CLI needs to log in, and holds that spawn's usage logs,
so reading a spawn's token usage never mixes spawns.

Split as everywhere in gastown: ``plan_home`` is pure and returns a ``HomePlan`` (what to
write, what to copy, which env vars and extra argv); ``write_home`` and ``spawn_env``
carry it out. A plan holds **no secret values**: API keys travel as env var *names*
(``env_from``) and are resolved only in ``spawn_env``, and credential files are copied
by ``write_home`` straight from the real home into the spawn home. So a plan may be
logged or stored; the spawn home itself may not (it holds copied credentials, 0600).

The real home is only ever read. Credentials are *copied*, not symlinked: a CLI that
refreshes its token writes the copy, never the user's file. (The cost: a refresh that
rotates the refresh token inside a spawn is not seen by the user's own CLI; a fresh
spawn copies again.)

Running as root: Claude Code refuses ``--dangerously-skip-permissions`` as root unless
``IS_SANDBOX=1``. gastown's polecats run with bypass permissions by design, each in its
own worktree, so when ``as_root`` is true the claude plan sets ``IS_SANDBOX=1`` (and
``gt doctor`` should say that agents run as root).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from gastown.errors import ConfigError, InvalidInput

CliKind = Literal["claude", "codex", "gemini", "aider", "opencode", "copilot", "demo"]
Family = Literal["anthropic", "openai-chat", "openai-responses", "gemini"]

CLI_KINDS: tuple[CliKind, ...] = ("claude", "codex", "gemini", "aider", "opencode", "copilot", "demo")

# Which API families each CLI can be pointed at (verified ones first).
SUPPORTED_FAMILIES: dict[CliKind, tuple[Family, ...]] = {
    "claude": ("anthropic",),
    "codex": ("openai-responses",),
    "gemini": ("gemini",),
    "aider": ("openai-chat",),
    "opencode": ("openai-chat",),
    "copilot": ("openai-chat", "openai-responses", "anthropic"),
    "demo": (),
}

# Env vars that would override or leak next to a configured endpoint: removed from the
# agent's environment (a real ANTHROPIC_API_KEY would be sent to the custom base URL).
_SHADOWING: dict[CliKind, tuple[str, ...]] = {
    "claude": ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX"),
    "codex": (),
    "gemini": ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT"),
    "aider": ("OPENAI_BASE_URL",),
    "opencode": (),
    "copilot": ("COPILOT_PROVIDER_BEARER_TOKEN",),
    "demo": (),
}

_XDG = {"XDG_CONFIG_HOME": ".config", "XDG_DATA_HOME": ".local/share", "XDG_STATE_HOME": ".local/state",
        "XDG_CACHE_HOME": ".cache"}

PROVIDER_ID = "gastown"


@dataclass(frozen=True)
class ModelEndpoint:
    """Where an agent's model lives, in one place for every CLI.

    ``base_url`` is what the API family calls its base: with ``/v1`` for the OpenAI
    families (``https://api.openai.com/v1``), without for Anthropic
    (``https://api.anthropic.com``) and Gemini
    (``https://generativelanguage.googleapis.com``). ``api_key_env`` *names* the
    variable in gastown's environment that holds the key; the key is never written
    to disk or to a plan.
    """

    family: Family
    base_url: str
    model: str
    api_key_env: str

    @property
    def root_url(self) -> str:
        """The base URL without a trailing ``/v1`` (what Anthropic/Gemini clients want)."""
        url = self.base_url.rstrip("/")
        return url.removesuffix("/v1")

    @property
    def v1_url(self) -> str:
        """The base URL ending in ``/v1`` (what OpenAI-style clients want)."""
        url = self.base_url.rstrip("/")
        return url if url.endswith("/v1") else url + "/v1"


@dataclass(frozen=True)
class SeedFile:
    """A file to write in the spawn home. ``merge_base`` (a file in the real home) is
    deep-merged *under* ``data`` when it exists: the user's settings, ours winning."""

    path: Path
    data: dict[str, Any] | None = None
    text: str | None = None
    merge_base: Path | None = None

    def render(self, base: Mapping[str, Any] | None = None) -> str:
        if self.text is not None:
            return self.text
        merged = deep_merge(base or {}, self.data or {})
        return json.dumps(merged, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Carry:
    """A file copied from the real home into the spawn home, if it exists there."""

    source: Path
    dest: Path


@dataclass(frozen=True)
class HomePlan:
    """Everything one spawn's home needs; holds paths and env var names, never secrets.

    ``env`` are literal values to set; ``env_from`` maps a variable to set onto the
    variable (in gastown's environment) whose value it takes; ``unset`` are removed;
    ``args`` are appended to the runtime's argv.
    """

    cli: CliKind
    root: Path
    files: tuple[SeedFile, ...] = ()
    carry: tuple[Carry, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    env_from: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    args: tuple[str, ...] = ()


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged onto ``base``: dicts recursively, lists united (order kept), else ``over`` wins.

    >>> deep_merge({"a": {"x": 1}, "l": [1]}, {"a": {"y": 2}, "l": [1, 2]})
    {'a': {'x': 1, 'y': 2}, 'l': [1, 2]}
    """
    out: dict[str, Any] = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = deep_merge(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            out[key] = old + [v for v in value if v not in old]
        else:
            out[key] = value
    return out


def claude_project_slug(path: Path | str) -> str:
    """Claude Code's directory name for a project: every non-alphanumeric char becomes ``-``.

    >>> claude_project_slug("/work/my_repo.v2")
    '-work-my-repo-v2'
    """
    return re.sub(r"[^A-Za-z0-9]", "-", str(path))


def plan_home(
    cli: CliKind,
    root: Path,
    worktree: Path,
    real_home: Path,
    endpoint: ModelEndpoint | None = None,
    *,
    as_root: bool = False,
    shared_cache: Path | None = None,
    git_identity: tuple[str, str] | None = None,
) -> HomePlan:
    """Plan the home of one spawn of ``cli`` working in ``worktree``; pure.

    ``root`` is the spawn's own (absolute) directory; ``real_home`` is the user's home,
    read for credentials only when ``endpoint`` is None (the CLI's own login). With an
    endpoint nothing of the user's is carried except ``.gitconfig`` (private-HOME CLIs
    still commit).

    ``shared_cache`` becomes ``XDG_CACHE_HOME`` (else ``<root>/.cache``): one directory
    for all spawns spares opencode its npm fetch of the provider package and copilot
    unpacking itself (~200 MB) on every spawn. ``git_identity`` (name, email) is set as
    ``GIT_AUTHOR_*``/``GIT_COMMITTER_*``: gemini runs every shell command with
    ``GIT_CONFIG_GLOBAL=/dev/null``, so without it the agent's ``git commit`` fails.

    Raises ``InvalidInput`` for an unknown CLI or an endpoint family it cannot speak.
    """
    if cli not in CLI_KINDS:
        raise InvalidInput(f"no home layout for agent CLI {cli!r}", hint="known: " + ", ".join(CLI_KINDS))
    if endpoint is not None and endpoint.family not in SUPPORTED_FAMILIES[cli]:
        raise InvalidInput(
            f"{cli} cannot talk to a {endpoint.family} endpoint",
            hint="it speaks: " + ", ".join(SUPPORTED_FAMILIES[cli]),
        )
    root, worktree = Path(root), Path(worktree)
    builder = _PLANNERS[cli]
    plan = builder(root, worktree.absolute(), Path(real_home), endpoint, as_root, shared_cache)
    # opencode takes its project dir from $PWD, not the process cwd: an inherited PWD
    # makes it work in (and edit) whatever directory gastown was started from.
    env = {**plan.env, "PWD": str(worktree.absolute())}
    if git_identity is not None:
        name, email = git_identity
        env |= {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    plan = replace(plan, env=env)
    if endpoint is not None:
        plan = replace(plan, unset=tuple(dict.fromkeys(plan.unset + _SHADOWING[cli])))
    return plan


def _private_home(root: Path, real_home: Path, shared_cache: Path | None) -> tuple[dict[str, str], list[Carry]]:
    env = {"HOME": str(root)}
    env |= {var: str(root / sub) for var, sub in _XDG.items()}
    if shared_cache is not None:
        env["XDG_CACHE_HOME"] = str(shared_cache)
    carry = [Carry(real_home / ".gitconfig", root / ".gitconfig"),
             Carry(real_home / ".config" / "git" / "config", root / ".config" / "git" / "config")]
    return env, carry


def _side_dirs(root: Path, shared_cache: Path | None) -> dict[str, str]:
    """XDG data/state/cache dirs inside the spawn home, for the CLIs that keep the real HOME.

    Claude's TUI registers a URL handler under ``$XDG_DATA_HOME/applications``; copilot
    unpacks itself (~200 MB) under ``$XDG_CACHE_HOME``. ``XDG_CONFIG_HOME`` stays the
    user's, so tools the agent runs (gh, git) still find their config.
    """
    return {"XDG_DATA_HOME": str(root / ".local" / "share"), "XDG_STATE_HOME": str(root / ".local" / "state"),
            "XDG_CACHE_HOME": str(shared_cache or root / ".cache")}


def _plan_claude(root: Path, worktree: Path, real_home: Path, endpoint: ModelEndpoint | None,
                 as_root: bool, shared_cache: Path | None) -> HomePlan:
    config = root / ".claude"
    state = {
        "hasCompletedOnboarding": True,
        "bypassPermissionsModeAccepted": True,
        "projects": {str(worktree): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
    }
    # disableDeepLinkRegistration: claude would otherwise register its claude-cli:// handler
    # with `xdg-mime`, which writes the user's real ~/.config/mimeapps.list.
    settings = {"skipDangerousModePermissionPrompt": True, "theme": "dark", "disableDeepLinkRegistration": "disable"}
    env = {"CLAUDE_CONFIG_DIR": str(config), "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "DISABLE_AUTOUPDATER": "1", **_side_dirs(root, shared_cache)}
    if as_root:
        env["IS_SANDBOX"] = "1"
    env_from: dict[str, str] = {}
    carry: list[Carry] = []
    if endpoint is None:
        carry.append(Carry(real_home / ".claude" / ".credentials.json", config / ".credentials.json"))
    else:
        env |= {"ANTHROPIC_BASE_URL": endpoint.root_url, "ANTHROPIC_MODEL": endpoint.model,
                "ANTHROPIC_SMALL_FAST_MODEL": endpoint.model, "ANTHROPIC_DEFAULT_HAIKU_MODEL": endpoint.model,
                "ANTHROPIC_DEFAULT_SONNET_MODEL": endpoint.model, "ANTHROPIC_DEFAULT_OPUS_MODEL": endpoint.model}
        # AUTH_TOKEN (Bearer) shows no "approve this API key" dialog; ANTHROPIC_API_KEY does.
        env_from["ANTHROPIC_AUTH_TOKEN"] = endpoint.api_key_env
    return HomePlan(
        cli="claude",
        root=root,
        files=(SeedFile(config / ".claude.json", state), SeedFile(config / "settings.json", settings)),
        carry=tuple(carry),
        env=env,
        env_from=env_from,
    )


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid TOML basic string


def codex_config_toml(worktree: Path, endpoint: ModelEndpoint | None) -> str:
    """``$CODEX_HOME/config.toml``: the trusted worktree and, with an endpoint, its provider."""
    lines = [
        "# written by gastown for one spawn",
        "check_for_update_on_startup = false",
        # A login shell (bash -lc) re-reads /etc/profile, which resets PATH on Debian:
        # the agent would no longer find the `gt` that gastown put first on PATH.
        "allow_login_shell = false",
    ]
    if endpoint is not None:
        lines += [
            f"model = {_toml_str(endpoint.model)}",
            f"model_provider = {_toml_str(PROVIDER_ID)}",
            "",
            f"[model_providers.{PROVIDER_ID}]",
            'name = "gastown endpoint"',
            f"base_url = {_toml_str(endpoint.v1_url)}",
            f"env_key = {_toml_str(endpoint.api_key_env)}",
            'wire_api = "responses"',
        ]
    lines += ["", "[analytics]", "enabled = false", "",
              f"[projects.{_toml_str(str(worktree))}]", 'trust_level = "trusted"', ""]
    return "\n".join(lines)


def _plan_codex(root: Path, worktree: Path, real_home: Path, endpoint: ModelEndpoint | None,
                as_root: bool, shared_cache: Path | None) -> HomePlan:
    home = root / ".codex"
    carry = [] if endpoint is not None else [Carry(real_home / ".codex" / "auth.json", home / "auth.json")]
    return HomePlan(
        cli="codex",
        root=root,
        files=(SeedFile(home / "config.toml", text=codex_config_toml(worktree, endpoint)),),
        carry=tuple(carry),
        env={"CODEX_HOME": str(home), **_side_dirs(root, shared_cache)},
    )


def _plan_gemini(root: Path, worktree: Path, real_home: Path, endpoint: ModelEndpoint | None,
                 as_root: bool, shared_cache: Path | None) -> HomePlan:
    env, carry = _private_home(root, real_home, shared_cache)
    gem = root / ".gemini"
    settings: dict[str, Any] = {
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
        "privacy": {"usageStatisticsEnabled": False},
        "ide": {"enabled": False, "hasSeenNudge": True},
    }
    merge_base: Path | None = None
    env_from: dict[str, str] = {}
    if endpoint is None:
        merge_base = real_home / ".gemini" / "settings.json"
        carry += [Carry(real_home / ".gemini" / name, gem / name)
                  for name in ("oauth_creds.json", "google_accounts.json", "installation_id")]
    else:
        # 0.61: with GOOGLE_GEMINI_BASE_URL set, auth detection picks "gateway", which
        # headless mode rejects; naming the type explicitly avoids it.
        settings = deep_merge(settings, {"security": {"auth": {"selectedType": "gemini-api-key"}},
                                         "model": {"name": endpoint.model}})
        env["GOOGLE_GEMINI_BASE_URL"] = endpoint.root_url
        env_from["GEMINI_API_KEY"] = endpoint.api_key_env
    files = (
        SeedFile(gem / "settings.json", settings, merge_base=merge_base),
        SeedFile(gem / "trustedFolders.json", {str(worktree): "TRUST_FOLDER"}),
    )
    return HomePlan(cli="gemini", root=root, files=files, carry=tuple(carry), env=env, env_from=env_from)


def _plan_aider(root: Path, worktree: Path, real_home: Path, endpoint: ModelEndpoint | None,
                as_root: bool, shared_cache: Path | None) -> HomePlan:
    env, carry = _private_home(root, real_home, shared_cache)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env_from: dict[str, str] = {}
    # History files live in the spawn home, not the (reused) worktree: usage per spawn,
    # and no .aider* droppings in the diff.
    args: list[str] = [
        "--chat-history-file", str(root / "aider.chat.history.md"),
        "--input-history-file", str(root / "aider.input.history"),
        "--analytics-log", str(root / "aider.analytics.jsonl"),
        "--no-gitignore",
        # Streamed replies carry no usage into aider: it would log its own estimate.
        "--no-stream",
    ]
    if endpoint is not None:
        env["OPENAI_API_BASE"] = endpoint.v1_url
        env_from["OPENAI_API_KEY"] = endpoint.api_key_env
        args += ["--model", f"openai/{endpoint.model}"]
    return HomePlan(cli="aider", root=root, carry=tuple(carry), env=env, env_from=env_from, args=tuple(args))


def opencode_config(endpoint: ModelEndpoint) -> dict[str, Any]:
    """opencode's config for one OpenAI-compatible endpoint; the key stays an ``{env:...}`` reference."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "provider": {
            PROVIDER_ID: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "gastown endpoint",
                "options": {"baseURL": endpoint.v1_url, "apiKey": "{env:" + endpoint.api_key_env + "}"},
                "models": {endpoint.model: {"name": endpoint.model}},
            }
        },
        "model": f"{PROVIDER_ID}/{endpoint.model}",
        "small_model": f"{PROVIDER_ID}/{endpoint.model}",
    }


def _plan_opencode(root: Path, worktree: Path, real_home: Path, endpoint: ModelEndpoint | None,
                   as_root: bool, shared_cache: Path | None) -> HomePlan:
    env, carry = _private_home(root, real_home, shared_cache)
    files: list[SeedFile] = []
    if endpoint is None:
        carry.append(Carry(real_home / ".local" / "share" / "opencode" / "auth.json",
                           root / ".local" / "share" / "opencode" / "auth.json"))
        files.append(SeedFile(root / ".config" / "opencode" / "opencode.json", {"autoupdate": False},
                              merge_base=real_home / ".config" / "opencode" / "opencode.json"))
    else:
        files.append(SeedFile(root / ".config" / "opencode" / "opencode.json", opencode_config(endpoint)))
    return HomePlan(cli="opencode", root=root, files=tuple(files), carry=tuple(carry), env=env)


def _plan_copilot(root: Path, worktree: Path, real_home: Path, endpoint: ModelEndpoint | None,
                  as_root: bool, shared_cache: Path | None) -> HomePlan:
    home = root / ".copilot"
    config = {"trustedFolders": [str(worktree)], "banner": "never"}
    env = {"COPILOT_HOME": str(home), **_side_dirs(root, shared_cache)}
    env_from: dict[str, str] = {}
    merge_base = None
    if endpoint is None:
        # Without a keychain, copilot keeps its GitHub login in config.json.
        merge_base = real_home / ".copilot" / "config.json"
    else:
        kind = {"openai-chat": ("openai", "completions"), "openai-responses": ("openai", "responses"),
                "anthropic": ("anthropic", "completions")}[endpoint.family]
        env |= {"COPILOT_PROVIDER_BASE_URL": endpoint.v1_url if kind[0] == "openai" else endpoint.root_url,
                "COPILOT_PROVIDER_TYPE": kind[0], "COPILOT_MODEL": endpoint.model, "COPILOT_OFFLINE": "true"}
        if kind[0] == "openai":
            env["COPILOT_PROVIDER_WIRE_API"] = kind[1]
        env_from["COPILOT_PROVIDER_API_KEY"] = endpoint.api_key_env
    files = (SeedFile(home / "config.json", config, merge_base=merge_base),)
    return HomePlan(cli="copilot", root=root, files=files, env=env, env_from=env_from)


def _plan_demo(root: Path, worktree: Path, real_home: Path, endpoint: ModelEndpoint | None,
               as_root: bool, shared_cache: Path | None) -> HomePlan:
    """The demo agent keeps the real HOME; its home only holds its usage log."""
    return HomePlan(cli="demo", root=root, env={"GT_AGENT_HOME": str(root)})


_PLANNERS = {
    "claude": _plan_claude,
    "codex": _plan_codex,
    "gemini": _plan_gemini,
    "aider": _plan_aider,
    "opencode": _plan_opencode,
    "copilot": _plan_copilot,
    "demo": _plan_demo,
}


# -- acting on a plan ------------------------------------------------------------------------


def write_home(plan: HomePlan) -> None:
    """Create the spawn home of ``plan``: dirs 0700, seeded files and copied credentials 0600.

    Idempotent (rewrites the same content). Reads the real home only through the plan's
    ``Carry.source``/``merge_base`` paths and never writes outside ``plan.root`` (a plan
    pointing elsewhere raises ``InvalidInput``). A missing carry source is skipped: the
    CLI then simply is not logged in.
    """
    root = plan.root
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for target in [f.path for f in plan.files] + [c.dest for c in plan.carry]:
        if not _inside(target, root):
            raise InvalidInput(f"refusing to write {target}: outside the spawn home {root}")
    for seed in plan.files:
        base = _read_json(seed.merge_base) if seed.merge_base is not None else None
        _write_private(seed.path, seed.render(base))
    for carry in plan.carry:
        if carry.source.is_file():
            carry.dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(carry.source, carry.dest)
            os.chmod(carry.dest, 0o600)


def spawn_env(plan: HomePlan, environ: Mapping[str, str]) -> dict[str, str]:
    """The agent's full environment: ``environ`` without ``plan.unset``, plus the plan's vars.

    ``env_from`` values are read from ``environ`` here (and only here); a missing one
    raises ``ConfigError`` naming the variable.
    """
    env = {k: v for k, v in environ.items() if k not in plan.unset}
    env.update(plan.env)
    for target, source in plan.env_from.items():
        if source not in environ:
            raise ConfigError(
                f"{plan.cli} needs the API key in ${source}, which is not set",
                hint=f"export {source}=... before starting gastown",
            )
        env[target] = environ[source]
    return env


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return False
    return True


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)

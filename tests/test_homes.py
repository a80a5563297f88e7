"""Per-spawn agent homes: the pure plans (table), writing them, and resolving the env."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest

from gastown.errors import ConfigError, InvalidInput
from gastown.runtimes.homes import (
    CLI_KINDS,
    HomePlan,
    ModelEndpoint,
    SeedFile,
    claude_project_slug,
    plan_home,
    spawn_env,
    write_home,
)

ROOT = Path("/town/.gastown/homes/sp-1")
WORK = Path("/town/app/polecats/nux")
REAL = Path("/home/user")
KEY_ENV = "MY_KEY"

ENDPOINTS = {
    "claude": ModelEndpoint("anthropic", "http://127.0.0.1:9/", "m-1", KEY_ENV),
    "codex": ModelEndpoint("openai-responses", "http://127.0.0.1:9/v1", "m-1", KEY_ENV),
    "gemini": ModelEndpoint("gemini", "http://127.0.0.1:9", "m-1", KEY_ENV),
    "aider": ModelEndpoint("openai-chat", "http://127.0.0.1:9", "m-1", KEY_ENV),
    "opencode": ModelEndpoint("openai-chat", "http://127.0.0.1:9/v1", "m-1", KEY_ENV),
    "copilot": ModelEndpoint("openai-chat", "http://127.0.0.1:9/v1", "m-1", KEY_ENV),
    "demo": None,  # the demo agent has no model: its home only holds its usage log
}

# cli -> (env that must be set, the variable the key lands in, argv that must be added)
ENDPOINT_CASES = {
    "claude": ({"CLAUDE_CONFIG_DIR": f"{ROOT}/.claude", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
                "ANTHROPIC_MODEL": "m-1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}, "ANTHROPIC_AUTH_TOKEN", ()),
    "codex": ({"CODEX_HOME": f"{ROOT}/.codex"}, None, ()),
    "gemini": ({"HOME": str(ROOT), "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9",
                "XDG_CONFIG_HOME": f"{ROOT}/.config"}, "GEMINI_API_KEY", ()),
    "aider": ({"HOME": str(ROOT), "OPENAI_API_BASE": "http://127.0.0.1:9/v1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
              "OPENAI_API_KEY", ("--model", "openai/m-1")),
    "opencode": ({"HOME": str(ROOT), "XDG_DATA_HOME": f"{ROOT}/.local/share"}, None, ()),
    "copilot": ({"COPILOT_HOME": f"{ROOT}/.copilot", "COPILOT_PROVIDER_BASE_URL": "http://127.0.0.1:9/v1",
                 "COPILOT_MODEL": "m-1", "COPILOT_OFFLINE": "true", "COPILOT_PROVIDER_WIRE_API": "completions"},
                "COPILOT_PROVIDER_API_KEY", ()),
}


@pytest.mark.parametrize("cli", ENDPOINT_CASES)
def test_endpoint_plans(cli: str) -> None:
    env, key_var, args = ENDPOINT_CASES[cli]
    plan = plan_home(cli, ROOT, WORK, REAL, ENDPOINTS[cli])  # type: ignore[arg-type]
    assert {k: plan.env.get(k) for k in env} == env
    assert plan.env["PWD"] == str(WORK)
    if key_var:
        assert plan.env_from == {key_var: KEY_ENV}
    for i in range(len(args) - 1):
        assert tuple(plan.args[plan.args.index(args[i]):][:2]) == args[i:i + 2]
    # With an endpoint nothing but git config comes from the real home.
    assert {c.source.name for c in plan.carry} <= {".gitconfig", "config"}


@pytest.mark.parametrize("cli", CLI_KINDS)
def test_a_plan_holds_no_secret_and_writes_only_inside_its_root(cli: str) -> None:
    plan = plan_home(cli, ROOT, WORK, REAL, ENDPOINTS[cli])  # type: ignore[arg-type]
    assert "sk-" not in repr(plan)
    for path in [f.path for f in plan.files] + [c.dest for c in plan.carry]:
        assert path.is_relative_to(ROOT)


def test_trust_and_onboarding_are_seeded_for_the_worktree() -> None:
    files = {cli: {f.path.name: f for f in plan_home(cli, ROOT, WORK, REAL, ENDPOINTS[cli]).files} for cli in CLI_KINDS}
    claude = json.loads(files["claude"][".claude.json"].render())
    assert claude["hasCompletedOnboarding"] and claude["projects"][str(WORK)]["hasTrustDialogAccepted"]
    claude_settings = json.loads(files["claude"]["settings.json"].render())
    assert claude_settings["skipDangerousModePermissionPrompt"] is True
    assert claude_settings["disableDeepLinkRegistration"] == "disable"  # else it edits ~/.config/mimeapps.list
    codex = tomllib.loads(files["codex"]["config.toml"].render())
    assert codex["projects"][str(WORK)] == {"trust_level": "trusted"}
    assert codex["allow_login_shell"] is False
    assert codex["model_providers"]["gastown"] == {
        "name": "gastown endpoint", "base_url": "http://127.0.0.1:9/v1", "env_key": KEY_ENV, "wire_api": "responses"}
    assert json.loads(files["gemini"]["trustedFolders.json"].render()) == {str(WORK): "TRUST_FOLDER"}
    gemini = json.loads(files["gemini"]["settings.json"].render())
    assert gemini["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert json.loads(files["copilot"]["config.json"].render())["trustedFolders"] == [str(WORK)]
    opencode = json.loads(files["opencode"]["opencode.json"].render())
    assert opencode["provider"]["gastown"]["options"]["apiKey"] == "{env:MY_KEY}"


def test_as_root_claude_runs_as_a_sandbox() -> None:
    assert plan_home("claude", ROOT, WORK, REAL, as_root=True).env["IS_SANDBOX"] == "1"
    assert "IS_SANDBOX" not in plan_home("claude", ROOT, WORK, REAL, as_root=False).env


def test_endpoint_removes_variables_that_would_leak_or_shadow() -> None:
    plan = plan_home("claude", ROOT, WORK, REAL, ENDPOINTS["claude"])
    env = spawn_env(plan, {"ANTHROPIC_API_KEY": "sk-real", KEY_ENV: "sk-gw", "PATH": "/bin"})
    assert "ANTHROPIC_API_KEY" not in env and env["ANTHROPIC_AUTH_TOKEN"] == "sk-gw" and env["PATH"] == "/bin"


def test_missing_key_variable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\$MY_KEY"):
        spawn_env(plan_home("gemini", ROOT, WORK, REAL, ENDPOINTS["gemini"]), {})


def test_git_identity_goes_to_author_and_committer() -> None:
    env = plan_home("gemini", ROOT, WORK, REAL, git_identity=("Nux", "nux@x.invalid")).env
    assert (env["GIT_AUTHOR_NAME"], env["GIT_COMMITTER_EMAIL"]) == ("Nux", "nux@x.invalid")


@pytest.mark.parametrize("cli,endpoint_family", [("codex", "anthropic"), ("claude", "openai-chat")])
def test_unsupported_family_is_refused(cli: str, endpoint_family: str) -> None:
    endpoint = ModelEndpoint(endpoint_family, "http://x", "m", "K")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        plan_home(cli, ROOT, WORK, REAL, endpoint)  # type: ignore[arg-type]


def test_claude_slug_replaces_every_non_alphanumeric() -> None:
    assert claude_project_slug("/work/my_repo.v2") == "-work-my-repo-v2"


def _real_home(tmp: Path) -> Path:
    real = tmp / "real"
    (real / ".claude").mkdir(parents=True)
    (real / ".claude" / ".credentials.json").write_text('{"token": "t"}')
    (real / ".gemini").mkdir()
    (real / ".gemini" / "settings.json").write_text('{"security": {"auth": {"selectedType": "oauth-personal"}}, "x": 1}')
    (real / ".gemini" / "oauth_creds.json").write_text("{}")
    (real / ".gitconfig").write_text("[user]\n\tname = R\n")
    return real


def test_write_home_copies_credentials_private_and_leaves_the_real_home_alone(tmp_path: Path) -> None:
    real = _real_home(tmp_path)
    before = {p: p.read_bytes() for p in real.rglob("*") if p.is_file()}
    claude = plan_home("claude", tmp_path / "h1", tmp_path / "wt", real)
    write_home(claude)
    cred = tmp_path / "h1/.claude/.credentials.json"
    assert cred.read_text() == '{"token": "t"}' and not cred.is_symlink()
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "h1").stat().st_mode) == 0o700
    gemini = plan_home("gemini", tmp_path / "h2", tmp_path / "wt", real)
    write_home(gemini)
    write_home(gemini)  # idempotent
    settings = json.loads((tmp_path / "h2/.gemini/settings.json").read_text())
    assert settings["x"] == 1 and settings["security"]["auth"]["selectedType"] == "oauth-personal"
    assert (tmp_path / "h2/.gemini/oauth_creds.json").exists() and (tmp_path / "h2/.gitconfig").exists()
    assert {p: p.read_bytes() for p in real.rglob("*") if p.is_file()} == before


def test_write_home_skips_missing_credentials(tmp_path: Path) -> None:
    write_home(plan_home("codex", tmp_path / "h", tmp_path / "wt", tmp_path / "nobody"))
    assert not (tmp_path / "h/.codex/auth.json").exists() and (tmp_path / "h/.codex/config.toml").exists()


def test_write_home_refuses_paths_outside_its_root(tmp_path: Path) -> None:
    plan = HomePlan(cli="claude", root=tmp_path / "h", files=(SeedFile(tmp_path / "elsewhere.json", {}),))
    with pytest.raises(InvalidInput):
        write_home(plan)
    assert not (tmp_path / "elsewhere.json").exists()


def test_plans_are_pure(tmp_path: Path) -> None:
    plan_home("opencode", tmp_path / "h", tmp_path / "wt", tmp_path / "real", ENDPOINTS["opencode"])
    assert os.listdir(tmp_path) == []

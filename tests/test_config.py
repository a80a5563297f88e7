"""gastown.toml: every kind of mistake is named by key path or line, and the example is complete."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest

from gastown.config.durations import parse_duration
from gastown.config.load import load_config, parse_config
from gastown.config.schema import (
    AgentConfig,
    GitHubConfig,
    EndpointConfig,
    NotifyConfig,
    HostConfig,
    Price,
    ReviewConfig,
    RefineryConfig,
    RigConfig,
    ServerConfig,
    TownConfig,
    TownSection,
    TriggerConfig,
    WitnessConfig,
)
from gastown.errors import ConfigError
from tests.helpers import run_gt

GOOD_RIG = '[rigs.app]\nrepo = "/srv/app.git"\n'


class BadConfig(NamedTuple):
    test_id: str
    text: str
    expected: str


BAD_CONFIGS = [
    BadConfig("syntax", '[town]\nname = "x"\nmax_polecats = = 3\n', "line 3, column 16: invalid TOML"),
    BadConfig("unclosed-table", "[town\n", "line 1, column 6: invalid TOML"),
    BadConfig("unknown-top-key", "[towns]\nname = 1\n", "towns: unknown key"),
    BadConfig("unknown-nested-key", GOOD_RIG + "bacth = 4\n", "rigs.app.bacth: unknown key"),
    BadConfig("bad-type", GOOD_RIG + 'batch = "4"\n', "rigs.app.batch: must be an integer"),
    BadConfig("bool-for-int", "[town]\nmax_polecats = true\n", "town.max_polecats: must be an integer"),
    BadConfig("too-small", GOOD_RIG + "batch = 0\n", "rigs.app.batch: must be ≥ 1"),
    BadConfig("bad-duration", '[witness]\nstall_after = "15 minutes"\n', 'witness.stall_after: must be a duration like "90s"'),
    BadConfig("negative-duration", "[witness]\nstall_after = -5\n", "witness.stall_after: must not be negative"),
    BadConfig("bad-literal", GOOD_RIG + 'merge = "octopus"\n', "rigs.app.merge: must be one of 'rebase', 'squash' or 'merge'"),
    BadConfig("missing-repo", "[rigs.app]\nbranch = 'main'\n", "rigs.app.repo: is required but missing"),
    BadConfig("bad-regex", "[agents.bot]\ncommand = ['bot']\nready = '(unclosed'\n", "agents.bot.ready: is not a valid regular expression"),
    BadConfig("empty-command", "[agents.bot]\ncommand = []\n", "agents.bot.command: must not be empty"),
    BadConfig("bad-rig-name", '[rigs."My App"]\nrepo = "x"\n', "rig name 'My App' must be lowercase"),
    BadConfig("bad-prefix", GOOD_RIG + 'prefix = "App-1"\n', "rigs.app: prefix must be 1-12 lowercase letters"),
    BadConfig("shared-prefix", GOOD_RIG + 'prefix = "x"\n[rigs.web]\nrepo = "y"\nprefix = "x"\n', "share the prefix 'x'"),
]


@pytest.mark.parametrize(list(BadConfig._fields), BAD_CONFIGS, ids=[c.test_id for c in BAD_CONFIGS])
def test_bad_config_names_key_or_line(test_id: str, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="gastown.toml")
    assert expected in str(caught.value), str(caught.value)


def test_several_problems_are_all_listed() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD_RIG + 'batch = 0\nmerge = "x"\n[witness]\nmax_nudges = -1\n')
    problems = caught.value.problems
    assert "rigs.app.batch: must be ≥ 1" in problems
    assert any(p.startswith("rigs.app.merge:") for p in problems)
    assert "witness.max_nudges: must be ≥ 0" in problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("500ms", 0.5), (45, 45), (1.5, 1.5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_durations_in_config_become_seconds() -> None:
    cfg = parse_config('[witness]\nstall_after = "2m"\nspawn_grace = 30\n')
    assert cfg.witness.stall_after == 120.0
    assert cfg.witness.spawn_grace == 30.0


def test_command_string_is_split_like_a_shell_never_run() -> None:
    cfg = parse_config("[agents.bot]\ncommand = \"python3 bot.py --name 'a b'\"\n")
    assert cfg.agents["bot"].command == ["python3", "bot.py", "--name", "a b"]


def test_config_error_from_cli_is_one_clear_message(town: Path) -> None:
    (town / "gastown.toml").write_text(GOOD_RIG + "batch = 0\n")
    result = run_gt("issue", "create", "x", cwd=town)
    assert result.returncode == 3
    assert "rigs.app.batch: must be ≥ 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_syntax_error_from_cli_names_line_and_column(town: Path) -> None:
    (town / "gastown.toml").write_text("[town]\nname = 'x\n")
    result = run_gt("doctor", cwd=town)
    assert result.returncode != 0
    assert "line 2, column" in result.stdout + result.stderr


EXAMPLE = Path(__file__).resolve().parents[1] / "gastown.toml.example"


def _uncommented_example() -> str:
    """The example with every `# key = value` line made live (the sample rig included)."""
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        match = re.match(r'^# ?((\[{1,2}[a-z0-9._"-]+\]{1,2})(?:\s+#.*)?|([a-z_]+ = .*))$', line)
        lines.append(match.group(1) if match else line)
    return "\n".join(lines)


def test_example_is_valid_as_written() -> None:
    load_config(EXAMPLE)


def test_example_documents_every_key_with_its_default() -> None:
    text = EXAMPLE.read_text()
    for model, section in [
        (TownSection, "town"),
        (WitnessConfig, "witness"),
        (RefineryConfig, "refinery"),
        (RigConfig, "rigs"),
        (AgentConfig, "agents"),
        (EndpointConfig, "town.model"),
        (Price, "prices"),
        (NotifyConfig, "notify"),
        (ReviewConfig, "rigs.app.review"),
        (GitHubConfig, "rigs.app.github"),
        (ServerConfig, "server"),
        (TriggerConfig, "triggers"),
        (HostConfig, "hosts"),
    ]:
        for key in model.model_fields:
            if key in ("model", "anthropic", "openai", "gemini") and model is TownSection:
                continue  # tables, documented by their headers
            if key in ("review", "github") and model is RigConfig:
                continue  # [rigs.app.review] / [rigs.app.github], documented by their headers and keys
            assert re.search(rf"^# ?{key} = ", text, re.M), f"{section}.{key} is not documented in the example"
    for table in ("[town.model]", "[town.model.anthropic]", "[town.model.openai]", "[town.model.gemini]", "[prices.",
                  "[rigs.app.review]", "[rigs.app.github]", "[[notify]]", "[hosts."):
        assert table in text
    live = parse_config(_uncommented_example())
    assert [bool(n.command) for n in live.notify] == [True, False], "both kinds of notifier, each valid"
    defaults = TownConfig()
    assert live.witness == defaults.witness
    assert live.refinery == defaults.refinery
    assert live.rigs["app"].review == ReviewConfig(agent="claude"), "the example's review table shows the defaults"
    assert live.rigs["app"].github == GitHubConfig(repo="acme/app", webhook_secret_env="GH_WEBHOOK_SECRET")
    assert live.server == defaults.server.model_copy(
        update={"token_env": "GT_SERVER_TOKEN", "public_url": "https://hooks.example.com"})
    assert live.town.max_polecats == defaults.town.max_polecats
    assert live.town.default_agent == defaults.town.default_agent
    assert set(live.triggers) == {"deps", "nightly"}  # the commented examples are valid as written
    assert live.triggers["deps"].max_body == 256 * 1024
    assert (live.server.enabled, live.server.host, live.server.port) == (True, "127.0.0.1", 8470)
    assert live.triggers["nightly"].schedule == "0 3 * * 1"

"""The settings cache: reading commands skip pydantic while gastown.toml is unchanged, and
a changed or broken file is always validated (never served stale)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gastown.config import cache
from gastown.config.load import load_settings, parse_config
from gastown.config.schema import (
    AgentConfig,
    Dialog,
    Price,
    RefineryConfig,
    RigConfig,
    TownConfig,
    TownSection,
    WitnessConfig,
)
from gastown.config.settings import (
    AgentSettings,
    DialogSettings,
    PriceSettings,
    RefineryDefaults,
    RigSettings,
    Settings,
    TownSettings,
    WitnessSettings,
)
from gastown.errors import ConfigError
from tests.helpers import run_gt, set_config

EXAMPLE = """
[town]
name = "acme"
max_polecats = 6
budget = 12.5

[refinery]
batch = 8

[witness]
stall_after = "20m"

[rigs.app]
repo = "/srv/app.git"
branch = "trunk"
max_polecats = 2
gates = ["pytest -q"]
merge = "squash"
names = ["ada", "bob"]

[rigs.web-ui]
repo = "/srv/web.git"
prefix = "web"
agent = "mybot"
mode = "headless"

[agents.claude]
ready = "READY>"
dialogs = [{ match = "Trust this folder[?]", keys = ["Down", "Enter"] }]
model = { base_url = "http://127.0.0.1:9/v1", api_key_env = "SOME_KEY", model = "m" }

[agents.mybot]
command = ["mybot", "--tui"]
headless = ["mybot", "--run"]
prompt = "arg"
ready_delay = "2s"
env = { MYBOT_QUIET = "1" }
rate_limit = ["slow down"]

[prices."my-model"]
input = 1.5
output = 6.0
"""


@pytest.mark.parametrize(
    ("plain", "model"),
    [(TownSettings, TownSection), (RigSettings, RigConfig), (RefineryDefaults, RefineryConfig),
     (WitnessSettings, WitnessConfig), (AgentSettings, AgentConfig), (DialogSettings, Dialog),
     (PriceSettings, Price)],
    ids=["town", "rig", "refinery", "witness", "agent", "dialog", "price"],
)
def test_settings_use_the_schemas_words(plain: type, model: type) -> None:
    """Every field of the plain settings is a key of the schema, so code reads the same words."""
    assert set(plain._fields) <= set(model.model_fields), set(plain._fields) - set(model.model_fields)


def test_settings_hold_the_validated_values_and_round_trip_through_json() -> None:
    config = parse_config(EXAMPLE)
    settings = Settings.from_config(config)
    assert settings.town == TownSettings("acme", "claude", 6, 12.5)
    assert settings.refinery.batch == 8 and settings.witness.stall_after == 1200.0
    assert settings.rigs["app"].branch == "trunk" and settings.rigs["app"].gates == ("pytest -q",)
    assert settings.rig_prefix("app") == config.rig_prefix("app") == "app"
    assert settings.rig_prefix("web-ui") == "web" and settings.rigs["web-ui"].names is None
    assert list(settings.rigs) == list(config.rigs), "rigs keep the file's order"
    assert Settings.from_json(json.loads(json.dumps(settings.to_json()))) == settings
    assert Settings.from_config(TownConfig()).witness.spawn_grace == TownConfig().witness.spawn_grace


def test_runtimes_and_prices_read_the_same_from_the_settings_as_from_the_config() -> None:
    """The agent's helpers (`gt _start`, `gt _end`, `gt done`, `gt nudge`) read them from the cache."""
    from dataclasses import replace

    from gastown.runtimes.presets import PRESETS
    from gastown.runtimes.registry import resolve_runtime, runtime_for

    config = parse_config(EXAMPLE)
    settings = Settings.from_json(json.loads(json.dumps(Settings.from_config(config).to_json())))
    for name in [*PRESETS, "mybot"]:
        assert resolve_runtime(settings, name) == replace(resolve_runtime(config, name), model=None), name
    for rig in ("app", "web-ui"):
        assert runtime_for(settings, rig) == replace(runtime_for(config, rig), model=None), rig
    assert runtime_for(settings, "web-ui").command == ("mybot", "--run"), "the rig's headless mode applies"
    assert resolve_runtime(config, "claude").model is not None, "the endpoint stays in the full config"
    assert resolve_runtime(settings, "claude").dialog_res[0][1] == ("Down", "Enter")
    from gastown.costs import price_for

    for model in ("my-model-2", "claude-sonnet-4-5", "demo", "unknown"):
        assert price_for(settings, model) == price_for(config, model), model
    assert price_for(settings, "my-model-2") == PriceSettings(1.5, 6.0)


def test_the_cache_answers_only_for_the_bytes_it_validated(tmp_path: Path) -> None:
    path, store = tmp_path / "gastown.toml", tmp_path / "run" / "config.json"
    path.write_text(EXAMPLE)
    first = load_settings(path, cache_path=store)
    assert cache.lookup(store, path.read_bytes()) == first
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    path.write_text(EXAMPLE.replace("max_polecats = 6", "max_polecats = 7"))
    assert cache.lookup(store, path.read_bytes()) is None
    assert load_settings(path, cache_path=store).town.max_polecats == 7
    path.write_text(EXAMPLE + "[[[\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(path, cache_path=store)
    assert cache.last_good(store).town.max_polecats == 7, "the last config that validated stays available"
    store.write_text("{not json")
    path.write_text(EXAMPLE)
    assert load_settings(path, cache_path=store) == first, "a corrupt cache is validated again, not trusted"


PROBE = """
import json, sys
from gastown._entry import main
code = main(sys.argv[1:])
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'rich', 'git', 'tomlkit', 'httpx', 'libtmux'})
sys.stderr.write('HEAVY=' + json.dumps(heavy) + '\\n')
sys.exit(code)
"""


def heavy_imports(args: list[str], cwd: Path) -> tuple[int, list[str], str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True)
    line = next(l for l in result.stderr.splitlines() if l.startswith("HEAVY="))
    return result.returncode, json.loads(line.removeprefix("HEAVY=")), result.stderr


def test_reading_commands_validate_only_a_changed_file(rig_town: Path) -> None:
    assert heavy_imports(["issue", "list"], rig_town)[:2] == (0, [])
    config = rig_town / "gastown.toml"
    config.write_text(config.read_text() + "\n# an edit\n")
    assert heavy_imports(["issue", "list"], rig_town)[:2] == (0, ["pydantic"]), "a changed file is validated"
    assert heavy_imports(["issue", "list"], rig_town)[:2] == (0, []), "and then trusted again"
    set_config(rig_town, "refinery", {"batch": 0})
    code, _, stderr = heavy_imports(["issue", "list"], rig_town)
    assert code == 0 and "refinery.batch" in stderr and "last good" in stderr, "a reading command warns, on the last good"
    code, _, stderr = heavy_imports(["sling", "app-x"], rig_town)
    assert code == 3 and "refinery.batch" in stderr, "an invalid value fails every acting command, cache or not"
    set_config(rig_town, "refinery", {"batch": 2})
    config.write_text(config.read_text() + "[[[\n")
    code, _, stderr = heavy_imports(["up"], rig_town)
    assert code == 3 and "invalid TOML" in stderr and "Traceback" not in stderr


def test_a_command_that_needs_the_full_config_still_validates_it(rig_town: Path) -> None:
    assert run_gt("issue", "list", cwd=rig_town).returncode == 0
    assert heavy_imports(["rig", "list"], rig_town)[:2] == (0, ["pydantic"])

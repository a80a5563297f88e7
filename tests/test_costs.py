"""Token costs and daily budgets, with demo agents that log usage like a real CLI does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gastown.config.schema import Price, TownConfig
from gastown.costs import cost_of, price_for
from tests.helpers import create_issue, gt_json, ledger_rows, retry_until, run_gt, set_config

FAST_WITNESS = {"patrol_interval": "0.3s", "stall_after": "30s", "idle_after": "30s", "stop_timeout": "1s"}


def demo_usage(town: Path, spawn: str) -> dict[str, int]:
    """What the demo agent itself recorded (the numbers a fake model server would report)."""
    lines = [json.loads(l) for l in (town / ".gastown" / "homes" / spawn / "usage.jsonl").read_text().splitlines()]
    return {"input": sum(l["input"] for l in lines), "output": sum(l["output"] for l in lines)}


def test_price_lookup_and_cost() -> None:
    config = TownConfig.model_validate({"prices": {"claude-sonnet-4-5": {"input": 1.0, "output": 2.0}}})
    assert price_for(config, "claude-sonnet-4-5-2026").input == 1.0  # the user's table wins, by longest prefix
    assert price_for(config, "claude-opus-4-1").output == 75.0  # then gastown's defaults
    assert price_for(config, "mystery-model") is None
    tokens = {"input": 2_000_000, "output": 0, "cache_read": 1_000_000, "cache_write": 0}
    assert cost_of(tokens, Price(input=3.0, output=15.0)) == 9.0  # cache reads at the input price unless set


@pytest.mark.tmux
def test_costs_equal_what_the_agent_recorded(rig_town: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GT_DEMO_THINK", "0.2")
    set_config(rig_town, "prices.demo", {"input": 2.0, "output": 10.0})
    issue = gt_json("issue", "create", "count me", "--body", "~~~demo\nwrite c.txt\nc\n~~~", cwd=rig_town)["id"]
    slung = gt_json("sling", issue, "--agent", "demo", cwd=rig_town)
    retry_until(lambda: gt_json("issue", "show", issue, cwd=rig_town)["status"] == "in_review", timeout=30, what="done")
    recorded = demo_usage(rig_town, slung["spawn"])
    costs = retry_until(lambda: (c := gt_json("costs", "--by", "issue", cwd=rig_town))["rows"] and c, what="costs")
    [row] = costs["rows"]
    assert row["key"] == issue
    assert (row["input"], row["output"], row["cache_read"], row["cache_write"]) == (recorded["input"], recorded["output"], 0, 0)
    assert row["cost"] == pytest.approx((recorded["input"] * 2.0 + recorded["output"] * 10.0) / 1e6)
    assert gt_json("status", cwd=rig_town)["costs"]["total_usd"] == pytest.approx(row["cost"], abs=1e-4)
    assert "count me" not in run_gt("costs", "--by", "bogus", cwd=rig_town).stdout


@pytest.mark.tmux
@pytest.mark.slow
def test_budget_reached_mid_run_stops_spawns_until_raised(rig_town: Path, tmux_socket: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GT_DEMO_THINK", "0.2")
    set_config(rig_town, "witness", FAST_WITNESS)
    set_config(rig_town, "rigs.app", {"agent": "demo"})
    # One demo task costs ~300 input tokens: at $1000 per million that is ~$0.30, over a $0.10 budget.
    set_config(rig_town, "prices.demo", {"input": 1000.0, "output": 1000.0})
    set_config(rig_town, "town", {"max_polecats": 1, "budget": 0.10})
    ids = [create_issue(rig_town, f"spend {n}", f"~~~demo\nwrite s{n}.txt\n{n}\n~~~") for n in range(3)]
    results = gt_json("sling", *ids, "--no-convoy", cwd=rig_town)
    assert [r["status"] for r in results] == ["started", "queued", "queued"]
    run_gt("up", cwd=rig_town, check=True)
    try:
        retry_until(lambda: ledger_rows(rig_town, "SELECT * FROM holds WHERE scope = 'budget:town'"), timeout=40,
                    what="the budget hold")
        retry_until(lambda: gt_json("issue", "show", ids[0], cwd=rig_town)["status"] in ("in_review", "closed"),
                    timeout=30, what="the agent already running to finish despite the spent budget")
        holds = [e for e in ledger_rows(rig_town, "SELECT * FROM events WHERE kind = 'hold'") if "budget" in e["message"]]
        assert holds and "daily budget" in holds[0]["message"]
        assert any(e["source"] == "budget" for e in gt_json("escalate", "list", cwd=rig_town))
        # nothing new starts while the budget is spent
        queued = {q["issue"] for q in gt_json("status", cwd=rig_town)["queued"]}
        assert queued == {ids[1], ids[2]}
        assert not ledger_rows(rig_town, "SELECT id FROM spawns WHERE issue IN (?, ?)", ids[1], ids[2])

        set_config(rig_town, "town", {"budget": 100.0})  # the Mayor reloads gastown.toml by itself
        retry_until(lambda: all(gt_json("issue", "show", i, cwd=rig_town)["status"] in ("in_review", "closed")
                                for i in ids), timeout=60, what="dispatch to resume after the raise")
        resumed = [e for e in ledger_rows(rig_town, "SELECT * FROM events WHERE kind = 'resume'") if "budget" in e["message"]]
        assert resumed and resumed[0]["id"] > holds[0]["id"]
    finally:
        run_gt("down", "--timeout", "1", cwd=rig_town)

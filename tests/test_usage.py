"""Token usage readers: one table per CLI format, over small hand-written records shaped
like the real ones (docs/runtimes-verified.md), plus finding the files in a spawn home."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gastown.runtimes.usage import (
    TokenUsage,
    parse_aider_analytics,
    parse_aider_history,
    parse_claude,
    parse_codex,
    parse_copilot,
    parse_gemini,
    parse_opencode,
    read_spawn_usage,
    usage_files,
)


def jl(*records: dict[str, Any], partial: bool = False) -> str:
    text = "\n".join(json.dumps(r) for r in records) + "\n"
    return text + ('{"type": "assistant", "message": {"id": "half' if partial else "")


def claude_line(msg_id: str, inp: int, out: int, read: int = 0, write: int = 0, model: str = "claude-x") -> dict[str, Any]:
    return {"type": "assistant", "sessionId": "s1", "message": {
        "id": msg_id, "model": model, "role": "assistant", "content": [{"type": "text", "text": "hi"}],
        "usage": {"input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": read,
                  "cache_creation_input_tokens": write}}}


def tokens(u: TokenUsage) -> tuple[int, int, int, int]:
    return (u.input, u.output, u.cache_read, u.cache_write)


CLAUDE_CASES = {
    "two responses": ([jl(claude_line("m1", 10, 2, 100, 5), claude_line("m2", 20, 3, 100, 0))], (30, 5, 200, 5), 2),
    "blocks of one message count once": (
        [jl(claude_line("m1", 10, 2), claude_line("m1", 10, 2), claude_line("m1", 10, 7))], (10, 7, 0, 0), 1),
    "resumed session repeats earlier messages": (
        [jl(claude_line("m1", 10, 2)), jl(claude_line("m1", 10, 2), claude_line("m2", 5, 1))], (15, 3, 0, 0), 2),
    "user lines, synthetic and a half-written line are skipped": (
        [jl({"type": "user", "message": {"role": "user", "content": "x"}},
            claude_line("m1", 10, 2), claude_line("m9", 0, 0, model="<synthetic>"), partial=True)], (10, 2, 0, 0), 2),
    "empty": ([""], (0, 0, 0, 0), 0),
}


@pytest.mark.parametrize("texts,expected,responses", CLAUDE_CASES.values(), ids=CLAUDE_CASES.keys())
def test_claude(texts: list[str], expected: tuple[int, int, int, int], responses: int) -> None:
    got = parse_claude(texts)
    assert tokens(got) == expected and got.responses == responses
    assert "<synthetic>" not in got.models


def codex_usage(inp: int, cached: int, written: int, out: int) -> dict[str, int]:
    return {"input_tokens": inp, "cached_input_tokens": cached, "cache_write_input_tokens": written,
            "output_tokens": out, "reasoning_output_tokens": 0, "total_tokens": inp + out}


def codex_record(resp: str, usage: dict[str, int]) -> dict[str, Any]:
    return {"type": "token_usage_record", "ordinal": 3, "payload": {"response_id": resp, "usage": usage,
                                                                   "thread_token_usage": usage}}


def codex_count(total: dict[str, int], last: dict[str, int]) -> dict[str, Any]:
    return {"type": "event_msg", "payload": {"type": "token_count",
                                             "info": {"total_token_usage": total, "last_token_usage": last}}}


U1, U2 = codex_usage(1230, 200, 30, 40), codex_usage(1330, 201, 31, 50)
U12 = codex_usage(2560, 401, 61, 90)
CODEX_CASES = {
    "per-response records, running totals ignored": (
        [jl({"type": "session_meta", "payload": {"id": "t1"}},
            {"type": "turn_context", "payload": {"model": "gpt-x"}},
            codex_record("r1", U1), codex_count(U1, U1), codex_record("r2", U2), codex_count(U12, U2))],
        (1000 + 1098, 90, 401, 61)),
    "a record written twice counts once": ([jl(codex_record("r1", U1), codex_record("r1", U1))], (1000, 40, 200, 30)),
    "older rollouts: the largest running total per session": (
        [jl({"type": "session_meta", "payload": {"id": "t1"}}, codex_count(U1, U1), codex_count(U12, U2))],
        (2098, 90, 401, 61)),
    "two sessions without records add up": (
        [jl({"type": "session_meta", "payload": {"id": "a"}}, codex_count(U1, U1)),
         jl({"type": "session_meta", "payload": {"id": "b"}}, codex_count(U2, U2))], (2098, 90, 401, 61)),
}


@pytest.mark.parametrize("texts,expected", CODEX_CASES.values(), ids=CODEX_CASES.keys())
def test_codex(texts: list[str], expected: tuple[int, int, int, int]) -> None:
    assert tokens(parse_codex(texts)) == expected


def test_codex_model_names() -> None:
    assert parse_codex([jl({"type": "turn_context", "payload": {"model": "gpt-x"}}, codex_record("r", U1))]).models == (
        "gpt-x",)


def gem(msg_id: str, inp: int, out: int, cached: int = 0, thoughts: int = 0, tool: int = 0,
        **extra: Any) -> dict[str, Any]:
    return {"id": msg_id, "type": "gemini", "model": "gemini-x", "content": "",
            "tokens": {"input": inp, "output": out, "cached": cached, "thoughts": thoughts, "tool": tool,
                       "total": inp + out}, **extra}


GEMINI_CASES = {
    "input includes cached; thoughts are output; tool prompt is input": (
        [jl({"sessionId": "s", "kind": "main"}, gem("a", 1200, 40, cached=200, thoughts=7, tool=3))], (1003, 47, 200, 0)),
    "a message rewritten with its tool calls counts once": (
        [jl(gem("a", 1200, 40, 200), {"$set": {"lastUpdated": "x"}}, gem("a", 1200, 40, 200, toolCalls=[{}]),
            gem("b", 1500, 45, 201))], (2299, 85, 401, 0)),
    "messages inside $set lists": (
        [jl({"$set": {"messages": [{"id": "u", "type": "user", "content": []}, gem("a", 10, 1)]}}, gem("a", 10, 1))],
        (10, 1, 0, 0)),
    "user records carry no usage": ([jl({"id": "u", "type": "user", "content": [{"text": "hi"}]})], (0, 0, 0, 0)),
}


@pytest.mark.parametrize("texts,expected", GEMINI_CASES.values(), ids=GEMINI_CASES.keys())
def test_gemini(texts: list[str], expected: tuple[int, int, int, int]) -> None:
    assert tokens(parse_gemini(texts)) == expected


def oc(role: str, inp: int = 0, out: int = 0, reasoning: int = 0, read: int = 0, write: int = 0,
       cost: float = 0.0) -> str:
    data: dict[str, Any] = {"role": role, "modelID": "m", "providerID": "p"}
    if role == "assistant":
        data |= {"cost": cost, "tokens": {"total": 0, "input": inp, "output": out, "reasoning": reasoning,
                                          "cache": {"read": read, "write": write}}}
    return json.dumps(data)


OPENCODE_CASES = {
    "assistant rows only; reasoning is output; cost summed": (
        [("u1", oc("user")), ("a1", oc("assistant", 1000, 40, 5, 200, 0, 0.25)),
         ("a2", oc("assistant", 1500, 45, 0, 201, 9, 0.5))], (2500, 90, 401, 9), 0.75),
    "broken JSON is skipped": ([("a1", "{not json"), ("a2", oc("assistant", 1, 1))], (1, 1, 0, 0), 0.0),
}


@pytest.mark.parametrize("rows,expected,cost", OPENCODE_CASES.values(), ids=OPENCODE_CASES.keys())
def test_opencode(rows: list[tuple[str, str]], expected: tuple[int, int, int, int], cost: float) -> None:
    got = parse_opencode(rows)
    assert tokens(got) == expected and got.cost_usd == pytest.approx(cost)


def cp_record(usage_id: str, inp: int, out: int, read: int = 0, write: int = 0, cost: float = 0.0) -> dict[str, Any]:
    return {"type": "session.usage_record", "id": f"ev-{usage_id}", "data": {"usage": {
        "model": "m", "inputTokens": inp, "outputTokens": out, "cacheReadTokens": read, "cacheWriteTokens": write,
        "cost": cost, "accounting": {"usageId": usage_id}}}}


def cp_shutdown(inp: int, out: int, read: int) -> dict[str, Any]:
    return {"type": "session.shutdown", "data": {"accountingSnapshot": {"modelMetrics": {"m": {
        "requests": {"count": 2, "cost": 1.5},
        "usage": {"inputTokens": inp, "outputTokens": out, "cacheReadTokens": read, "cacheWriteTokens": 0}}}}}}


COPILOT_CASES = {
    "per-call records; input includes cached; shutdown totals not added": (
        [jl(cp_record("c1", 1200, 40, 200, cost=0.5), cp_record("c2", 1701, 45, 201), cp_shutdown(2901, 85, 401))],
        (2500, 85, 401, 0), 0.5),
    "a record seen twice counts once": ([jl(cp_record("c1", 12, 4, 2), cp_record("c1", 12, 4, 2))], (10, 4, 2, 0), 0.0),
    "no records: the shutdown snapshot": ([jl(cp_shutdown(2901, 85, 401))], (2500, 85, 401, 0), 1.5),
}


@pytest.mark.parametrize("texts,expected,cost", COPILOT_CASES.values(), ids=COPILOT_CASES.keys())
def test_copilot(texts: list[str], expected: tuple[int, int, int, int], cost: float) -> None:
    got = parse_copilot(texts)
    assert tokens(got) == expected and got.cost_usd == pytest.approx(cost)


def test_aider_analytics_are_exact() -> None:
    log = jl({"event": "launched", "properties": {}},
             {"event": "message_send", "properties": {"prompt_tokens": 1200, "completion_tokens": 40, "cost": 0.01}},
             {"event": "message_send", "properties": {"prompt_tokens": 1501, "completion_tokens": 45, "cost": 0.02}})
    got = parse_aider_analytics([log])
    assert tokens(got) == (2701, 85, 0, 0) and got.responses == 2 and got.cost_usd == pytest.approx(0.03)


AIDER_HISTORY = """# aider chat started at 2026-11-23 19:15:32

> Aider v0.86.2
> Model: openai/fake-model with whole edit format

#### Create hello.py

> Tokens: 771 sent, 18 received.
> Tokens: 1.2k sent, 200 cache hit, 40 received. Cost: $0.01 message, $0.01 session.
> Tokens: 12k sent, 1.5k cache write, 2.0k cache hit, 1.1k received.
"""


def test_aider_history_parses_rounded_counts() -> None:
    got = parse_aider_history([AIDER_HISTORY])
    assert tokens(got) == (771 + 1000 + 8500, 18 + 40 + 1100, 2200, 1500)
    assert got.models == ("openai/fake-model",) and got.cost_usd == pytest.approx(0.01)


def test_sum_of_usages_keeps_unknown_cost_unknown() -> None:
    a, b = TokenUsage(1, 2, 3, 4, ("x",), None, 1), TokenUsage(1, 1, 1, 1, ("w",), None, 1)
    assert (a + b) == TokenUsage(2, 3, 4, 5, ("w", "x"), None, 2)
    assert (a + TokenUsage(cost_usd=0.5)).cost_usd == 0.5


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_read_spawn_usage_finds_each_cli_s_files(tmp_path: Path) -> None:
    _write(tmp_path / ".claude/projects/-work-repo/s1.jsonl", jl(claude_line("m1", 10, 2)))
    _write(tmp_path / ".claude/projects/-work-repo/s1/subagents/a.jsonl", jl(claude_line("m2", 5, 1)))
    _write(tmp_path / ".codex/sessions/2026/11/23/rollout-x.jsonl", jl(codex_record("r1", U1)))
    _write(tmp_path / ".gemini/tmp/repo/chats/session-1.jsonl", jl(gem("a", 12, 4, 2)))
    _write(tmp_path / ".copilot/session-state/u1/events.jsonl", jl(cp_record("c1", 12, 4, 2)))
    _write(tmp_path / "aider.analytics.jsonl", jl({"event": "message_send",
                                                  "properties": {"prompt_tokens": 9, "completion_tokens": 1}}))
    _write(tmp_path / "aider.chat.history.md", "> Model: openai/m with whole edit format\n> Tokens: 1.2k sent, 1 received.\n")
    db = tmp_path / ".local/share/opencode/opencode.db"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT, data TEXT)")
    conn.execute("INSERT INTO message VALUES ('a1', 's', ?)", (oc("assistant", 7, 3, 0, 1, 0),))
    conn.commit()
    conn.close()

    assert tokens(read_spawn_usage("claude", tmp_path)) == (15, 3, 0, 0)
    assert tokens(read_spawn_usage("codex", tmp_path)) == (1000, 40, 200, 30)
    assert tokens(read_spawn_usage("gemini", tmp_path)) == (10, 4, 2, 0)
    assert tokens(read_spawn_usage("copilot", tmp_path)) == (10, 4, 2, 0)
    assert tokens(read_spawn_usage("opencode", tmp_path)) == (7, 3, 1, 0)
    aider = read_spawn_usage("aider", tmp_path)  # the exact analytics win over the rounded history
    assert tokens(aider) == (9, 1, 0, 0) and aider.models == ("openai/m",)


def test_an_empty_home_reads_as_zero(tmp_path: Path) -> None:
    for cli in ("claude", "codex", "gemini", "aider", "opencode", "copilot"):
        assert usage_files(cli, tmp_path) == []
        assert read_spawn_usage(cli, tmp_path) == TokenUsage()

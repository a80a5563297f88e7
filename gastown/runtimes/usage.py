"""Token usage per spawn, read from each agent CLI's own records.

Every CLI writes what its model server reported, each in its own place and dialect
(see docs/runtimes-verified.md); this module turns them into one ``TokenUsage``:

- ``input``: prompt tokens *not* read from or written to a cache,
- ``cache_read`` / ``cache_write``: prompt tokens read from / written to a cache,
- ``output``: generated tokens, reasoning/thinking included,

so the whole prompt is ``input + cache_read + cache_write`` whatever the CLI's
convention (OpenAI-style records count cached tokens inside their input number; those
are subtracted here). ``cost_usd`` is the CLI's own figure where it records one
(opencode, copilot, aider), else None.

The ``parse_*`` functions are pure (file contents in, totals out) and tolerate
partial lines, unknown record types and repeated records (each CLI has its own key to
deduplicate on). ``read_spawn_usage`` finds the files in a spawn home laid out by
``gastown.runtimes.homes`` and is the only part that touches the disk; every file in
that home belongs to the one spawn, so nothing has to be filtered by time or cwd.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gastown.runtimes.homes import CliKind


@dataclass(frozen=True)
class TokenUsage:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    models: tuple[str, ...] = ()
    cost_usd: float | None = None
    # How many model responses the totals cover (after deduplication).
    responses: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        cost = None if self.cost_usd is None and other.cost_usd is None else (self.cost_usd or 0.0) + (
            other.cost_usd or 0.0)
        return TokenUsage(
            input=self.input + other.input,
            output=self.output + other.output,
            cache_read=self.cache_read + other.cache_read,
            cache_write=self.cache_write + other.cache_write,
            models=tuple(sorted(set(self.models) | set(other.models))),
            cost_usd=cost,
            responses=self.responses + other.responses,
        )

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def tokens(self) -> dict[str, int]:
        """The four counts as a dict (what the ledger stores and tests compare)."""
        return {"input": self.input, "output": self.output, "cache_read": self.cache_read,
                "cache_write": self.cache_write}


@dataclass
class _Acc:
    """Accumulates deduplicated per-response usage; the last record of a key wins."""

    by_key: dict[str, tuple[int, int, int, int, float | None]] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)
    saw_cost: bool = False

    def put(self, key: str, input: int, output: int, cache_read: int, cache_write: int,
            cost: float | None = None) -> None:
        self.by_key[key] = (max(input, 0), max(output, 0), max(cache_read, 0), max(cache_write, 0), cost)
        if cost is not None:
            self.saw_cost = True

    def total(self) -> TokenUsage:
        rows = list(self.by_key.values())
        return TokenUsage(
            input=sum(r[0] for r in rows),
            output=sum(r[1] for r in rows),
            cache_read=sum(r[2] for r in rows),
            cache_write=sum(r[3] for r in rows),
            models=tuple(sorted(m for m in self.models if m)),
            cost_usd=sum(r[4] or 0.0 for r in rows) if self.saw_cost else None,
            responses=len(rows),
        )


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _json_lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if isinstance(doc, dict):
            yield doc


# -- Claude Code: <config>/projects/<slug>/<session>.jsonl ----------------------------------


def parse_claude(texts: Iterable[str]) -> TokenUsage:
    """Claude transcripts: ``message.usage`` on ``assistant`` lines, deduplicated by ``message.id``.

    One response with several content blocks is written as several lines carrying the
    same id and usage; a resumed session repeats earlier messages. Both count once.
    """
    acc = _Acc()
    for text in texts:
        for line in _json_lines(text):
            message = line.get("message")
            if line.get("type") != "assistant" or not isinstance(message, dict):
                continue
            usage = message.get("usage")
            if not isinstance(usage, dict):
                continue
            key = str(message.get("id") or line.get("uuid") or len(acc.by_key))
            model = str(message.get("model") or "")
            if model and not model.startswith("<"):  # "<synthetic>" marks local messages
                acc.models.add(model)
            acc.put(key, _int(usage.get("input_tokens")), _int(usage.get("output_tokens")),
                    _int(usage.get("cache_read_input_tokens")), _int(usage.get("cache_creation_input_tokens")),
                    _float(line.get("costUSD")))
    return acc.total()


# -- Codex: $CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl ---------------------------------


def _codex_put(acc: _Acc, key: str, usage: dict[str, Any]) -> None:
    cached = _int(usage.get("cached_input_tokens"))
    written = _int(usage.get("cache_write_input_tokens"))
    acc.put(key, _int(usage.get("input_tokens")) - cached - written, _int(usage.get("output_tokens")), cached, written)


def parse_codex(texts: Iterable[str]) -> TokenUsage:
    """Codex rollouts: one ``token_usage_record`` per response, deduplicated by ``response_id``.

    ``token_count`` events carry a running ``total_token_usage`` and the
    ``last_token_usage``; summing either would double count, so they are used only for
    rollouts without per-response records (older versions): the largest total per session.
    """
    records, totals = _Acc(), _Acc()
    for index, text in enumerate(texts):
        session = f"file{index}"
        for line in _json_lines(text):
            payload = line.get("payload")
            if not isinstance(payload, dict):
                continue
            kind = line.get("type")
            if kind == "session_meta":
                session = str(payload.get("id") or session)
            elif kind == "turn_context" and payload.get("model"):
                records.models.add(str(payload["model"]))
            elif kind == "token_usage_record" and isinstance(payload.get("usage"), dict):
                key = str(payload.get("response_id") or f"{session}:{line.get('ordinal')}")
                _codex_put(records, key, payload["usage"])
            elif kind == "event_msg" and payload.get("type") == "token_count":
                total = (payload.get("info") or {}).get("total_token_usage")
                if isinstance(total, dict):
                    old = totals.by_key.get(session)
                    if old is None or _int(total.get("total_tokens")) >= sum(old[:4]):
                        _codex_put(totals, session, total)
    chosen = records if records.by_key else totals
    chosen.models |= records.models
    return chosen.total()


# -- Gemini CLI: ~/.gemini/tmp/<project>/chats/session-*.jsonl ------------------------------


def _gemini_messages(line: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "$set" in line and isinstance(line["$set"], dict):
        messages = line["$set"].get("messages")
        if isinstance(messages, list):
            yield from (m for m in messages if isinstance(m, dict))
    elif "id" in line and "type" in line:
        yield line


def parse_gemini(texts: Iterable[str]) -> TokenUsage:
    """Gemini chats: ``tokens`` on ``type: "gemini"`` records, deduplicated by ``id``.

    A message is rewritten (same id) once its tool calls finish; ``$set`` lines may
    carry whole message lists. ``tokens.input`` includes ``cached``; ``thoughts`` are
    output and ``tool`` (tool-use prompt) is input.
    """
    acc = _Acc()
    for text in texts:
        for line in _json_lines(text):
            for message in _gemini_messages(line):
                tokens = message.get("tokens")
                if message.get("type") != "gemini" or not isinstance(tokens, dict):
                    continue
                if message.get("model"):
                    acc.models.add(str(message["model"]))
                cached = _int(tokens.get("cached"))
                acc.put(str(message.get("id")), _int(tokens.get("input")) - cached + _int(tokens.get("tool")),
                        _int(tokens.get("output")) + _int(tokens.get("thoughts")), cached, 0)
    return acc.total()


# -- opencode: ~/.local/share/opencode/opencode.db, table message(data JSON) -----------------


def parse_opencode(rows: Iterable[tuple[str, str]]) -> TokenUsage:
    """opencode ``message`` rows as ``(id, data)``: assistant ``tokens`` and ``cost``.

    opencode already keeps cached tokens out of ``tokens.input``; ``reasoning`` is output.
    """
    acc = _Acc()
    for message_id, raw in rows:
        try:
            data = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("role") != "assistant" or not isinstance(data.get("tokens"), dict):
            continue
        tokens = data["tokens"]
        cache = tokens.get("cache") if isinstance(tokens.get("cache"), dict) else {}
        if data.get("modelID"):
            acc.models.add(str(data["modelID"]))
        acc.put(str(message_id), _int(tokens.get("input")), _int(tokens.get("output")) + _int(tokens.get("reasoning")),
                _int(cache.get("read")), _int(cache.get("write")), _float(data.get("cost")))
    return acc.total()


# -- Copilot CLI: $COPILOT_HOME/session-state/<id>/events.jsonl ------------------------------


def _copilot_put(acc: _Acc, key: str, usage: dict[str, Any], model: str) -> None:
    cache_read, cache_write = _int(usage.get("cacheReadTokens")), _int(usage.get("cacheWriteTokens"))
    if model:
        acc.models.add(model)
    acc.put(key, _int(usage.get("inputTokens")) - cache_read - cache_write, _int(usage.get("outputTokens")),
            cache_read, cache_write, _float(usage.get("cost")))


def parse_copilot(texts: Iterable[str]) -> TokenUsage:
    """Copilot events: ``session.usage_record`` per call (deduplicated by its usage id).

    ``inputTokens`` includes the cached tokens. Sessions without per-call records fall
    back to the ``session.shutdown`` accounting snapshot (per model).
    """
    records, snapshots = _Acc(), _Acc()
    for index, text in enumerate(texts):
        for line in _json_lines(text):
            data = line.get("data")
            if not isinstance(data, dict):
                continue
            if line.get("type") == "session.usage_record" and isinstance(data.get("usage"), dict):
                usage = data["usage"]
                accounting = usage.get("accounting") if isinstance(usage.get("accounting"), dict) else {}
                key = str(accounting.get("usageId") or usage.get("apiCallId") or line.get("id"))
                _copilot_put(records, key, usage, str(usage.get("model") or ""))
            elif line.get("type") == "session.shutdown":
                metrics = (data.get("accountingSnapshot") or {}).get("modelMetrics") or {}
                for model, entry in metrics.items():
                    if isinstance(entry, dict) and isinstance(entry.get("usage"), dict):
                        cost = (entry.get("requests") or {}).get("cost")
                        _copilot_put(snapshots, f"{index}:{model}", {**entry["usage"], "cost": cost}, model)
    return (records if records.by_key else snapshots).total()


# -- aider: analytics log (exact) or chat history (rounded) ----------------------------------


def parse_aider_analytics(texts: Iterable[str]) -> TokenUsage:
    """aider's ``--analytics-log`` JSONL: ``message_send`` events with exact token counts.

    aider does not split cached tokens out for OpenAI-compatible models, so everything
    it sent counts as ``input``. Model names are redacted there ("openai/REDACTED").
    """
    acc = _Acc()
    n = 0
    for text in texts:
        for line in _json_lines(text):
            props = line.get("properties")
            if line.get("event") != "message_send" or not isinstance(props, dict):
                continue
            n += 1
            acc.put(str(n), _int(props.get("prompt_tokens")), _int(props.get("completion_tokens")), 0, 0,
                    _float(props.get("cost")))
    return acc.total()


_AIDER_TOKENS = re.compile(
    r"^> Tokens: (?P<sent>[\d.]+k?) sent(?:, (?P<write>[\d.]+k?) cache write)?"
    r"(?:, (?P<hit>[\d.]+k?) cache hit)?, (?P<received>[\d.]+k?) received\.",
    re.MULTILINE,
)
_AIDER_COST = re.compile(r"Cost: \$(?P<message>[\d.]+) message")
_AIDER_MODEL = re.compile(r"^> (?:Main )?[Mm]odel: (\S+)", re.MULTILINE)


def _aider_count(text: str | None) -> int:
    """aider's ``format_tokens``: ``950``, ``1.2k``, ``12k`` (so above 1000, rounded)."""
    if not text:
        return 0
    if text.endswith("k"):
        return round(float(text[:-1]) * 1000)
    return int(float(text))


def parse_aider_history(texts: Iterable[str]) -> TokenUsage:
    """aider's ``.aider.chat.history.md``: ``> Tokens: N sent, M received.`` lines.

    Approximate above 1000 tokens (aider prints ``1.2k``); prefer the analytics log.
    """
    acc = _Acc()
    n = 0
    for text in texts:
        acc.models.update(m.group(1) for m in _AIDER_MODEL.finditer(text))
        for match in _AIDER_TOKENS.finditer(text):
            n += 1
            hit, write = _aider_count(match["hit"]), _aider_count(match["write"])
            tail = text[match.end(): match.end() + 200].split("\n> Tokens:", 1)[0]
            cost = _AIDER_COST.search(tail)
            acc.put(str(n), _aider_count(match["sent"]) - hit - write, _aider_count(match["received"]), hit, write,
                    float(cost["message"]) if cost else None)
    return acc.total()


# -- finding the files in a spawn home -------------------------------------------------------


def usage_files(cli: CliKind, home: Path) -> list[Path]:
    """The usage files in spawn home ``home`` (layout of ``gastown.runtimes.homes``), sorted."""
    patterns = {
        "claude": (".claude/projects", "**/*.jsonl"),
        "codex": (".codex/sessions", "**/rollout-*.jsonl"),
        "gemini": (".gemini/tmp", "*/chats/session-*.json*"),
        "opencode": (".local/share/opencode", "opencode*.db"),
        "copilot": (".copilot/session-state", "*/events.jsonl"),
        "aider": (".", "aider.*"),
        "demo": (".", "usage.jsonl"),
    }
    base, pattern = patterns[cli]
    folder = home / base
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(pattern) if p.is_file())


def read_spawn_usage(cli: CliKind, home: Path) -> TokenUsage:
    """Total usage recorded in spawn home ``home``; zeros when the CLI wrote nothing yet.

    Safe while the agent runs (a half-written last line is skipped; opencode's SQLite is
    opened read-only). Raises nothing for missing or unreadable files.
    """
    files = usage_files(cli, home)
    if cli == "opencode":
        return parse_opencode(row for db in files for row in _opencode_rows(db))
    if cli == "aider":
        analytics = [p for p in files if p.name.endswith("analytics.jsonl")]
        if analytics and (found := parse_aider_analytics(_read_all(analytics))).responses:
            history = parse_aider_history(_read_all(p for p in files if p.name.endswith("history.md")))
            return TokenUsage(found.input, found.output, 0, 0, history.models, found.cost_usd, found.responses)
        return parse_aider_history(_read_all(p for p in files if p.name.endswith("history.md")))
    parser = {
        "claude": parse_claude, "codex": parse_codex, "gemini": parse_gemini, "copilot": parse_copilot,
        "demo": parse_demo,
    }[cli]
    return parser(_read_all(files))


def parse_demo(texts: Iterable[str]) -> TokenUsage:
    """The demo agent's ``usage.jsonl``: ``{"id", "model", "input", "output"}`` per call.

    >>> parse_demo(['{"id": "a", "model": "demo", "input": 10, "output": 5}\\n{"id": "a", "model": "demo", "input": 10, "output": 5}'])
    TokenUsage(input=10, output=5, cache_read=0, cache_write=0, models=('demo',), cost_usd=None, responses=1)
    """
    seen: dict[str, dict[str, Any]] = {}
    for text in texts:
        for line in _json_lines(text):
            seen[str(line.get("id"))] = line
    return TokenUsage(
        input=sum(_int(r.get("input")) for r in seen.values()),
        output=sum(_int(r.get("output")) for r in seen.values()),
        models=tuple(sorted({str(r.get("model")) for r in seen.values() if r.get("model")})),
        responses=len(seen),
    )


def _read_all(paths: Iterable[Path]) -> Iterator[str]:
    for path in paths:
        try:
            yield path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue


def _opencode_rows(db: Path) -> list[tuple[str, str]]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return [(str(r[0]), str(r[1])) for r in conn.execute("SELECT id, data FROM message")]
        finally:
            conn.close()
    except sqlite3.Error:
        return []

"""Gemini API (Gemini CLI): ``POST /v1beta/models/<model>:streamGenerateContent?alt=sse``.

Point gemini at it with ``GOOGLE_GEMINI_BASE_URL=<base_url>`` and ``GEMINI_API_KEY``.
Also answers ``:generateContent`` (one JSON document) and ``:countTokens``. Requests
that ask for JSON output (``responseMimeType``/``responseSchema``: gemini's router and
next-speaker checks) get a value filled from the schema. ``promptTokenCount`` includes
the cached tokens (``cachedContentTokenCount``), as the real API does.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.base import Action, FakeServer, Kind, Responder, Text, ToolCall, Turn, Usage

_MODEL_RE = re.compile(r"/models/([^/:]+):(\w+)")


def gemini_usage(usage: Usage) -> dict[str, int]:
    prompt = usage.input + usage.cache_read + usage.cache_write
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": usage.output,
        "cachedContentTokenCount": usage.cache_read,
        "totalTokenCount": prompt + usage.output,
    }


def _text_of(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "\n".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and "text" in p)


class FakeGemini(FakeServer):
    family = "gemini"
    model_name = "gemini-2.5-flash"

    def route(self, method: str, path: str) -> bool:
        match = _MODEL_RE.search(path)
        if method != "POST" or match is None:
            return False
        return match.group(2) in ("streamGenerateContent", "generateContent")

    def handle_other_post(self, out: Responder, path: str, body: dict[str, Any]) -> bool:
        match = _MODEL_RE.search(path)
        if match and match.group(2) == "countTokens":
            out.send_json({"totalTokens": 1})
            return True
        return False

    def parse_turn(self, path: str, body: dict[str, Any]) -> Turn:
        match = _MODEL_RE.search(path)
        tools: dict[str, dict[str, Any]] = {}
        for group in body.get("tools") or []:
            for decl in group.get("functionDeclarations") or []:
                if "name" in decl:
                    tools[decl["name"]] = decl.get("parametersJsonSchema") or decl.get("parameters") or {}
        results, last_user = 0, ""
        for content in body.get("contents") or []:
            parts = content.get("parts") or []
            results += sum(1 for p in parts if isinstance(p, dict) and "functionResponse" in p)
            if content.get("role") == "user" and _text_of(parts):
                last_user = _text_of(parts)
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        if schema is None and config.get("responseMimeType") == "application/json":
            schema = {}
        system = body.get("systemInstruction") or {}
        return Turn(
            tools=tools,
            tool_results=results,
            system=_text_of(system.get("parts")) if isinstance(system, dict) else str(system),
            model=match.group(1) if match else "",
            stream=bool(match and match.group(2) == "streamGenerateContent"),
            json_schema=schema,
            last_user=last_user,
        )

    def send_action(self, out: Responder, turn: Turn, action: Action, usage: Usage, kind: Kind) -> None:
        if isinstance(action, ToolCall):
            part: dict[str, Any] = {"functionCall": {"name": action.name, "args": action.arguments}}
        else:
            assert isinstance(action, Text)
            part = {"text": action.text}
        doc = {
            "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": gemini_usage(usage),
            "modelVersion": turn.model or self.model,
            "responseId": f"fake-{action.call_id if isinstance(action, ToolCall) else 'text'}",
        }
        if not turn.stream:
            out.send_json(doc)
            return
        with out.sse() as emit:
            emit(doc)

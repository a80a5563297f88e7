"""Anthropic Messages API (Claude Code): ``POST /v1/messages`` with SSE streaming.

Point Claude Code at it with ``ANTHROPIC_BASE_URL=<base_url>`` (no ``/v1``) and
``ANTHROPIC_AUTH_TOKEN``. Usage goes out in full in both ``message_start`` and
``message_delta``, so the numbers come through whichever one a client keeps.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.fakes.base import Action, FakeServer, Kind, Responder, Text, ToolCall, Turn, Usage


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def anthropic_usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input,
        "output_tokens": usage.output,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
    }


class FakeAnthropic(FakeServer):
    family = "anthropic"
    model_name = "claude-sonnet-4-5"

    def route(self, method: str, path: str) -> bool:
        return method == "POST" and path.rstrip("/").endswith("/v1/messages")

    def handle_other_post(self, out: Responder, path: str, body: dict[str, Any]) -> bool:
        if path.rstrip("/").endswith("/messages/count_tokens"):
            out.send_json({"input_tokens": 1})
            return True
        return False

    def parse_turn(self, path: str, body: dict[str, Any]) -> Turn:
        tools = {t["name"]: t.get("input_schema") or {} for t in body.get("tools") or [] if "name" in t}
        results = 0
        last_user = ""
        for message in body.get("messages") or []:
            content = message.get("content")
            if message.get("role") == "user":
                last_user = _text_of(content)
                if isinstance(content, list):
                    results += sum(1 for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
        return Turn(
            tools=tools,
            tool_results=results,
            system=_text_of(body.get("system")),
            model=str(body.get("model", "")),
            stream=bool(body.get("stream")),
            last_user=last_user,
        )

    def send_action(self, out: Responder, turn: Turn, action: Action, usage: Usage, kind: Kind) -> None:
        msg_id = f"msg_fake_{uuid.uuid4().hex[:20]}"
        model = turn.model or self.model
        if isinstance(action, ToolCall):
            block: dict[str, Any] = {"type": "tool_use", "id": f"toolu_{action.call_id}", "name": action.name,
                                     "input": action.arguments}
            stop = "tool_use"
        else:
            assert isinstance(action, Text)
            block = {"type": "text", "text": action.text}
            stop = "end_turn"
        if not turn.stream:
            out.send_json({"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [block],
                           "stop_reason": stop, "stop_sequence": None, "usage": anthropic_usage(usage)})
            return
        with out.sse() as emit:
            emit({"type": "message_start", "message": {
                "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": anthropic_usage(usage)}}, "message_start")
            if block["type"] == "tool_use":
                emit({"type": "content_block_start", "index": 0,
                      "content_block": {**block, "input": {}}}, "content_block_start")
                emit({"type": "content_block_delta", "index": 0,
                      "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}},
                     "content_block_delta")
            else:
                emit({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                     "content_block_start")
                emit({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": block["text"]}},
                     "content_block_delta")
            emit({"type": "content_block_stop", "index": 0}, "content_block_stop")
            emit({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                  "usage": anthropic_usage(usage)}, "message_delta")
            emit({"type": "message_stop"}, "message_stop")

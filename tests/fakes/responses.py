"""OpenAI Responses API with SSE (Codex): ``POST /v1/responses``.

Point codex at ``<base_url>/v1`` through a ``[model_providers.*]`` table with
``wire_api = "responses"``. ``usage.input_tokens`` is the whole prompt (cached tokens
included, OpenAI's convention); ``input_tokens_details`` says how many were read from /
written to the cache.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from tests.fakes.base import Action, FakeServer, Kind, Responder, Text, ToolCall, Turn, Usage

_RESULT_ITEMS = ("function_call_output", "custom_tool_call_output", "local_shell_call_output")


def responses_usage(usage: Usage) -> dict[str, Any]:
    prompt = usage.input + usage.cache_read + usage.cache_write
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": usage.cache_read, "cache_write_tokens": usage.cache_write},
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + usage.output,
    }


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class FakeResponses(FakeServer):
    family = "openai-responses"

    def route(self, method: str, path: str) -> bool:
        return method == "POST" and path.rstrip("/").endswith("/responses")

    def parse_turn(self, path: str, body: dict[str, Any]) -> Turn:
        tools = {t["name"]: t.get("parameters") or {} for t in body.get("tools") or [] if t.get("name")}
        results, last_user, system = 0, "", [str(body.get("instructions") or "")]
        items = body.get("input") or []
        for item in items if isinstance(items, list) else []:
            kind = item.get("type", "message")
            if kind in _RESULT_ITEMS:
                results += 1
            elif kind == "message" and item.get("role") == "user":
                last_user = _text_of(item.get("content"))
            elif kind == "message" and item.get("role") in ("system", "developer"):
                system.append(_text_of(item.get("content")))
        fmt = ((body.get("text") or {}).get("format") or {})
        schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
        return Turn(
            tools=tools,
            tool_results=results,
            system="\n".join(system),
            model=str(body.get("model", "")),
            stream=bool(body.get("stream", True)),
            json_schema=schema,
            last_user=last_user,
        )

    def send_action(self, out: Responder, turn: Turn, action: Action, usage: Usage, kind: Kind) -> None:
        resp_id = f"resp_{uuid.uuid4().hex[:24]}"
        model = turn.model or self.model
        if isinstance(action, ToolCall):
            item: dict[str, Any] = {"type": "function_call", "id": f"fc_{action.call_id}", "call_id": action.call_id,
                                    "name": action.name, "arguments": json.dumps(action.arguments),
                                    "status": "completed"}
        else:
            assert isinstance(action, Text)
            item = {"type": "message", "id": f"msg_{uuid.uuid4().hex[:16]}", "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": action.text, "annotations": []}]}
        base = {"id": resp_id, "object": "response", "created_at": int(time.time()), "model": model}
        done = {**base, "status": "completed", "output": [item], "usage": responses_usage(usage)}
        if not turn.stream:
            out.send_json(done)
            return
        with out.sse() as emit:
            emit({"type": "response.created", "response": {**base, "status": "in_progress", "output": []}},
                 "response.created")
            emit({"type": "response.in_progress", "response": {**base, "status": "in_progress", "output": []}},
                 "response.in_progress")
            if item["type"] == "function_call":
                emit({"type": "response.output_item.added", "output_index": 0,
                      "item": {**item, "arguments": "", "status": "in_progress"}}, "response.output_item.added")
                emit({"type": "response.function_call_arguments.delta", "output_index": 0, "item_id": item["id"],
                      "delta": item["arguments"]}, "response.function_call_arguments.delta")
                emit({"type": "response.function_call_arguments.done", "output_index": 0, "item_id": item["id"],
                      "arguments": item["arguments"]}, "response.function_call_arguments.done")
            else:
                text = item["content"][0]["text"]
                emit({"type": "response.output_item.added", "output_index": 0,
                      "item": {**item, "content": [], "status": "in_progress"}}, "response.output_item.added")
                emit({"type": "response.content_part.added", "output_index": 0, "item_id": item["id"],
                      "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
                     "response.content_part.added")
                emit({"type": "response.output_text.delta", "output_index": 0, "item_id": item["id"],
                      "content_index": 0, "delta": text}, "response.output_text.delta")
                emit({"type": "response.output_text.done", "output_index": 0, "item_id": item["id"],
                      "content_index": 0, "text": text}, "response.output_text.done")
            emit({"type": "response.output_item.done", "output_index": 0, "item": item}, "response.output_item.done")
            emit({"type": "response.completed", "response": done}, "response.completed")

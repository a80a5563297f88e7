"""OpenAI chat completions (aider, opencode, copilot): ``POST /v1/chat/completions``.

Streams when the request says ``stream: true`` (ending with ``data: [DONE]``), else one
JSON document. Point clients at ``<base_url>/v1``. ``prompt_tokens`` counts the cached
tokens too (OpenAI's convention); ``prompt_tokens_details.cached_tokens`` says how many.
For aider, build the script with ``aider_whole=True``: aider edits through reply text in
its "whole" edit format, not through tools.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from tests.fakes.base import Action, FakeServer, Kind, Responder, Text, ToolCall, Turn, Usage


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def chat_usage(usage: Usage) -> dict[str, Any]:
    prompt = usage.input + usage.cache_read + usage.cache_write
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output,
        "total_tokens": prompt + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


class FakeOpenAIChat(FakeServer):
    family = "openai-chat"

    def route(self, method: str, path: str) -> bool:
        return method == "POST" and path.rstrip("/").endswith("/chat/completions")

    def parse_turn(self, path: str, body: dict[str, Any]) -> Turn:
        tools: dict[str, dict[str, Any]] = {}
        for tool in body.get("tools") or []:
            fn = tool.get("function") or {}
            if "name" in fn:
                tools[fn["name"]] = fn.get("parameters") or {}
        system, last_user, results = [], "", 0
        for message in body.get("messages") or []:
            role = message.get("role")
            if role in ("system", "developer"):
                system.append(_text_of(message.get("content")))
            elif role == "user":
                last_user = _text_of(message.get("content"))
            elif role == "tool":
                results += 1
        return Turn(
            tools=tools,
            tool_results=results,
            system="\n".join(system),
            model=str(body.get("model", "")),
            stream=bool(body.get("stream")),
            last_user=last_user,
        )

    def send_action(self, out: Responder, turn: Turn, action: Action, usage: Usage, kind: Kind) -> None:
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        model = turn.model or self.model
        if isinstance(action, ToolCall):
            call = {"id": action.call_id, "type": "function",
                    "function": {"name": action.name, "arguments": json.dumps(action.arguments)}}
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        else:
            assert isinstance(action, Text)
            message = {"role": "assistant", "content": action.text}
            finish = "stop"
        if not turn.stream:
            out.send_json({"id": cid, "object": "chat.completion", "created": created, "model": model,
                           "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                           "usage": chat_usage(usage)})
            return

        def chunk(delta: dict[str, Any], finish_reason: str | None, **extra: Any) -> dict[str, Any]:
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}

        with out.sse() as emit:
            if isinstance(action, ToolCall):
                emit(chunk({"role": "assistant", "content": None,
                            "tool_calls": [{"index": 0, **message["tool_calls"][0]}]}, None))
            else:
                emit(chunk({"role": "assistant", "content": message["content"]}, None))
            # Usage rides on the finishing chunk: clients that asked for include_usage and
            # clients that did not both read it there.
            emit(chunk({}, finish, usage=chat_usage(usage)))
            emit("[DONE]")

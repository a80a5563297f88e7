"""The fake model servers: the turn logic (pure, a table) and one real HTTP exchange per
API family, parsed the way a client would, so a broken fake fails here and not as a
puzzling real-CLI failure."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

import pytest

from tests.fakes import FakeAnthropic, FakeGemini, FakeOpenAIChat, FakeResponses, FakeServer, Script, Usage, decide
from tests.fakes.base import Text, ToolCall, Turn

BASH = {"type": "object", "properties": {"command": {"type": "string"}, "description": {"type": "string"}}}
CODEX = {"type": "object", "properties": {"cmd": {"type": "string"}}}


def turn(tools: dict[str, Any], results: int = 0, system: str = "", schema: dict[str, Any] | None = None) -> Turn:
    return Turn(tools=tools, tool_results=results, system=system, model="m", stream=True, json_schema=schema)


EDIT = Script.edit("hello.py", "print('hi')\n")
DONE = Script.edit_then_done("a b.py", "x\n", message="it's done")
DECIDE_CASES = {
    "no tools: side call, plain text": (EDIT, turn({}), "side", Text("Fake title")),
    "no tools with a schema: filled JSON": (
        EDIT, turn({}, schema={"type": "object", "properties": {"next_speaker": {"enum": ["user", "model"]}}}),
        "side", Text('{"next_speaker": "user"}')),
    "claude Write with the absolute path from the system prompt": (
        EDIT, turn({"Write": {}, "Bash": BASH}, system="Primary working directory: /w/repo\nIs git: yes"), "tool",
        ToolCall("Write", {"file_path": "/w/repo/hello.py", "content": "print('hi')\n"}, "c1")),
    "shell tool with a relative path, content quoted": (
        EDIT, turn({"bash": BASH}), "tool",
        ToolCall("bash", {"command": "printf %s 'print('\"'\"'hi'\"'\"')\n' > hello.py",
                          "description": "Run the scripted command"}, "c1")),
    "codex exec_command takes cmd": (
        EDIT, turn({"exec_command": CODEX}), "tool", ToolCall("exec_command", {"cmd": "printf %s 'print('\"'\"'hi'\"'\"')\n' > hello.py"}, "c1")),
    "after the tool result: final text": (EDIT, turn({"bash": BASH}, results=1), "final", Text(EDIT.final_text)),
    "done variant, step two commits and runs gt done": (
        DONE, turn({"run_shell_command": BASH}, results=1), "tool",
        ToolCall("run_shell_command", {"command": "git add -A && git commit -q -m 'it'\"'\"'s done' && gt done",
                                       "description": "Run the scripted command"}, "c1")),
    "aider: whole-file reply": (
        Script.edit("hello.py", "x", aider_whole=True), turn({}), "tool", Text("Here is the change.\n\nhello.py\n```\nx\n```\n")),
    "aider: commit message request": (
        Script.edit("hello.py", "x", aider_whole=True), turn({}, system="Generate a commit message."), "side",
        Text("Fake title")),
}


@pytest.mark.parametrize("script,the_turn,kind,action", DECIDE_CASES.values(), ids=DECIDE_CASES.keys())
def test_decide(script: Script, the_turn: Turn, kind: str, action: object) -> None:
    assert decide(script, the_turn, "c1") == (kind, action)


def post(url: str, body: dict[str, Any]) -> tuple[str, str]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers.get("Content-Type", ""), resp.read().decode()


def sse_data(text: str) -> list[Any]:
    out = []
    for line in text.splitlines():
        if line.startswith("data: "):
            payload = line[6:]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


USAGE = Usage(input=100, output=20, cache_read=30, cache_write=4)
script = Script.edit("f.txt", "hi\n", usage=lambda kind, i: USAGE)


def test_anthropic_stream_carries_tool_use_and_usage() -> None:
    with FakeAnthropic(script) as fake:
        ctype, text = post(fake.base_url + "/v1/messages?beta=true", {
            "model": "m", "stream": True, "system": [{"type": "text", "text": "Primary working directory: /r"}],
            "tools": [{"name": "Write", "input_schema": {}}], "messages": [{"role": "user", "content": "go"}]})
    events = sse_data(text)
    assert ctype == "text/event-stream" and next(e["type"] for e in events) == "message_start"
    assert json.loads(events[2]["delta"]["partial_json"]) == {"file_path": "/r/f.txt", "content": "hi\n"}
    assert events[-2]["usage"] == {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 4,
                                   "cache_read_input_tokens": 30}
    assert fake.usage_of("tool") == USAGE


def test_chat_completions_stream_and_plain() -> None:
    with FakeOpenAIChat(script) as fake:
        body = {"model": "m", "stream": True, "tools": [{"type": "function", "function": {"name": "bash", "parameters": BASH}}],
                "messages": [{"role": "user", "content": "go"}]}
        _, text = post(fake.base_url + "/v1/chat/completions", body)
        _, plain = post(fake.base_url + "/v1/chat/completions", {**body, "stream": False, "messages": [
            {"role": "user", "content": "go"}, {"role": "tool", "tool_call_id": "c", "content": "ok"}]})
    chunks = sse_data(text)
    assert chunks[-1] == "[DONE]" and chunks[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "bash"
    assert chunks[-2]["usage"]["prompt_tokens"] == 134 and chunks[-2]["usage"]["prompt_tokens_details"]["cached_tokens"] == 30
    assert json.loads(plain)["choices"][0]["message"]["content"] == script.final_text


def test_responses_stream_ends_with_completed_usage() -> None:
    with FakeResponses(script) as fake:
        _, text = post(fake.base_url + "/v1/responses", {
            "model": "m", "stream": True, "tools": [{"type": "function", "name": "exec_command", "parameters": CODEX}],
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}]})
    events = sse_data(text)
    done = next(e for e in events if e["type"] == "response.output_item.done")["item"]
    assert done["type"] == "function_call" and json.loads(done["arguments"])["cmd"].endswith("> f.txt")
    assert events[-1]["response"]["usage"]["input_tokens"] == 134
    assert events[-1]["response"]["usage"]["input_tokens_details"] == {"cached_tokens": 30, "cache_write_tokens": 4}


def test_gemini_sse_function_call() -> None:
    with FakeGemini(script) as fake:
        _, text = post(fake.base_url + "/v1beta/models/gemini-x:streamGenerateContent?alt=sse", {
            "contents": [{"role": "user", "parts": [{"text": "go"}]}],
            "tools": [{"functionDeclarations": [{"name": "run_shell_command", "parametersJsonSchema": BASH}]}]})
    (doc,) = sse_data(text)
    assert doc["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "run_shell_command"
    assert doc["usageMetadata"]["cachedContentTokenCount"] == 30 and fake.log_of("tool")[0].model == "gemini-x"


def test_delay_holds_the_answer_and_stop_cuts_it_short() -> None:
    fake: FakeServer = FakeOpenAIChat(Script.edit("f", "x", delay=30)).start()
    body = {"model": "m", "tools": [{"type": "function", "function": {"name": "bash", "parameters": BASH}}],
            "messages": [{"role": "user", "content": "go"}]}
    errors: list[Exception] = []

    def call() -> None:
        try:
            post(fake.base_url + "/v1/chat/completions", body)
        except OSError as exc:  # the connection is dropped on stop
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while fake.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.in_flight == 1 and fake.log_of("tool") == []
    started = time.monotonic()
    fake.stop()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 5

"""Fake model servers for driving the real agent CLIs offline (stdlib only).

One server per API family, all on 127.0.0.1 with a free port, all scripted the same
way (``Script``: tool-call steps, then a final answer; side calls get plain text):

=================  ==================================  =========================
class              API                                  used by
=================  ==================================  =========================
FakeAnthropic      Messages, SSE                       claude
FakeResponses      OpenAI Responses, SSE               codex
FakeGemini         streamGenerateContent?alt=sse       gemini
FakeOpenAIChat     chat completions (stream or not)    aider, opencode, copilot
=================  ==================================  =========================
"""

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import FakeServer, Record, Script, Shell, Usage, WriteFile, decide, fill_schema
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai_chat import FakeOpenAIChat
from tests.fakes.responses import FakeResponses

FAKES: dict[str, type[FakeServer]] = {
    "claude": FakeAnthropic,
    "codex": FakeResponses,
    "gemini": FakeGemini,
    "aider": FakeOpenAIChat,
    "opencode": FakeOpenAIChat,
    "copilot": FakeOpenAIChat,
}
"""Which fake each CLI talks to."""

__all__ = [
    "FAKES",
    "FakeAnthropic",
    "FakeGemini",
    "FakeOpenAIChat",
    "FakeResponses",
    "FakeServer",
    "Record",
    "Script",
    "Shell",
    "Usage",
    "WriteFile",
    "decide",
    "fill_schema",
]

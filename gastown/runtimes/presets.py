"""Built-in runtime presets, as plain data.

The screen markers (ready, busy, dialogs, rate-limit texts) were read off the real
CLIs (versions in docs/runtimes.md); they change between releases, which is why every
one of them can be overridden in ``[agents.<name>]``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

PromptMode = Literal["arg", "paste"]


@dataclass(frozen=True)
class DialogSpec:
    match: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Preset:
    command: tuple[str, ...]
    prompt: PromptMode
    ready: str | None = None
    busy: str | None = None
    ready_delay: float = 5.0
    env: dict[str, str] = field(default_factory=dict)
    dialogs: tuple[DialogSpec, ...] = ()
    rate_limit: tuple[str, ...] = ()
    # Escape cancels the running turn in these CLIs, so it is never sent to them.
    escape_cancels: bool = False
    # Which per-spawn home layout it gets (gastown/runtimes/homes.py); None: none.
    cli: str | None = None
    # argv for mode = "headless": runs the task and exits ({prompt} as in `command`).
    headless: tuple[str, ...] = ()
    # "gastown": the CLI cannot run `gt done` itself, gastown submits its commits for it.
    submit: str = "agent"


def frame_paste(cli: str | None, text: str, tag: str = "gastown") -> str:
    """``text`` framed so the CLI takes it as ONE message when it is pasted at its prompt.

    aider's plain prompt (``--no-fancy-input``) does not take bracketed pastes: every
    pasted line is sent to the model as a message of its own. It reads the lines
    between ``{tag`` and ``tag}`` as one message (``tag``: letters and digits; pick
    one that is not a line of the text). Other CLIs take the text as it is.

    >>> frame_paste("aider", "a\\nb", "t1")
    '{t1\\na\\nb\\nt1}'
    >>> frame_paste("aider", "one line"), frame_paste("claude", "a\\nb")
    ('one line', 'a\\nb')
    """
    body = text.strip("\n")
    if cli != "aider" or "\n" not in body:
        return text
    return f"{{{tag}\n{body}\n{tag}}}"


_TRUST_FILES = DialogSpec(r"Do you trust the files in this folder\?", ("Enter",))

PRESETS: dict[str, Preset] = {
    "claude": Preset(
        command=("claude", "--dangerously-skip-permissions", "{prompt}"),
        prompt="arg",
        ready=r"^❯[ \u00a0]",
        busy=r"esc to interrupt",
        ready_delay=10.0,
        env={"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"},
        dialogs=(
            DialogSpec(r"Yes, I trust this folder", ("Enter",)),
            DialogSpec(r"Bypass Permissions mode", ("Down", "Enter")),
            DialogSpec(r"Press Enter to continue", ("Enter",)),
        ),
        rate_limit=(
            r"usage limit reached",
            r"limit reached\W+resets",
            r"API Error: 429",
        ),
        cli="claude",
        headless=("claude", "--dangerously-skip-permissions", "-p", "{prompt}"),
    ),
    "codex": Preset(
        command=("codex", "--dangerously-bypass-approvals-and-sandbox"),
        prompt="paste",
        ready=r"^› ",
        busy=r"esc to interrupt|Working \(",
        ready_delay=3.0,
        dialogs=(
            DialogSpec(r"Trust this folder\?", ("Enter",)),
            DialogSpec(r"Do you trust the contents of this directory\?", ("Enter",)),
        ),
        rate_limit=(r"You've hit your usage limit", r"Rate limit reached", r"exceeded retry limit, last status: 429"),
        cli="codex",
        headless=("codex", "exec", "--dangerously-bypass-approvals-and-sandbox", "{prompt}"),
    ),
    "gemini": Preset(
        command=("gemini", "--approval-mode", "yolo"),
        prompt="paste",
        ready=r"Type your message or @path/to/file",
        busy=r"esc to cancel",
        ready_delay=5.0,
        dialogs=(_TRUST_FILES,),
        rate_limit=(r"Quota exceeded", r"RESOURCE_EXHAUSTED", r"Rate limit exceeded"),
        escape_cancels=True,
        cli="gemini",
        headless=("gemini", "--approval-mode", "yolo", "-p", "{prompt}"),
    ),
    "aider": Preset(
        command=(
            "aider",
            "--yes-always",
            "--no-show-model-warnings",
            "--no-check-update",
            "--analytics-disable",
            "--no-show-release-notes",
            "--no-pretty",
            "--no-fancy-input",
        ),
        prompt="paste",
        ready=r"^(\S+ )?> ?$",
        busy=None,
        ready_delay=5.0,
        env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        rate_limit=(r"RateLimitError", r"rate_limit_exceeded"),
        cli="aider",
        headless=(
            "aider", "--yes-always", "--no-show-model-warnings", "--no-check-update", "--analytics-disable",
            "--no-show-release-notes", "--no-pretty", "--no-fancy-input", "--message", "{prompt}",
        ),
        # aider refuses shell commands its model proposes, `gt done` included.
        submit="gastown",
    ),
    "opencode": Preset(
        # The prompt goes in argv: opencode submits it at start and goes straight to its
        # session view. Its home screen centres the input box with ~20 blank rows below,
        # so no marker of it is within the bottom lines gastown reads: never "ready".
        command=("opencode", "--prompt={prompt}"),
        prompt="arg",
        # "Ask anything" shows only on the home screen; the footer hint shows in every view.
        ready=r"ctrl\+p commands",
        busy=r"esc interrupt",
        ready_delay=8.0,
        env={"OPENCODE_PERMISSION": '{"*":"allow"}', "OPENCODE_DISABLE_AUTOUPDATE": "1"},
        rate_limit=(r"Rate limit exceeded", r"rate_limit_error"),
        cli="opencode",
        headless=("opencode", "run", "{prompt}"),
    ),
    "copilot": Preset(
        command=("copilot", "--yolo", "--no-ask-user"),
        prompt="paste",
        ready=r"^❯\s*$",
        busy=r"[◎●] Working",
        ready_delay=5.0,
        dialogs=(_TRUST_FILES,),
        rate_limit=(r"rate limit", r"quota exceeded"),
        escape_cancels=True,
        cli="copilot",
        headless=("copilot", "--yolo", "--no-ask-user", "-p", "{prompt}"),
    ),
    "demo": Preset(
        command=(sys.executable, "-m", "gastown.demo_agent"),
        prompt="paste",
        ready=r"^demo> $",
        busy=r"^demo: thinking",
        ready_delay=1.0,
        dialogs=(DialogSpec(r"Do you trust this folder\? \[y/n\]", ("y", "Enter")),),
        rate_limit=(r"^demo: usage limit reached",),
        cli="demo",
        headless=(sys.executable, "-m", "gastown.demo_agent", "--task-file", "{prompt_file}"),
    ),
}

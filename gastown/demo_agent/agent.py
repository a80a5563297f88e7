"""The demo agent's main loop: prompt, read, then run a task or acknowledge a message.

A task (see ``script``) runs its directives in order under the busy line, then commits
with ``git add -A`` + ``git commit`` and runs ``gt done`` from PATH, printing what it
did. A ``ratelimit`` directive stops a task halfway: the rest waits for the next input,
of any kind. Every subprocess gets an argv list and a timeout; no input ever reaches a
shell. Exit status: 0 on Ctrl-D or end of input, 130 on Ctrl-C, 1 when the trust
question is answered no, the ``crash`` code on purpose, 128+N on signal N.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from gastown.demo_agent.script import (
    Attempt,
    Directive,
    TaskPlan,
    commit_message,
    is_task,
    one_line,
    plan_task,
    printable,
)
from gastown.demo_agent.reviewer import is_review_prompt
from gastown.demo_agent.terminal import BusyLine, Quit, Terminal
from gastown.errors import GastownError, InvalidInput

PROMPT = "demo> "
BUSY_LABEL = "demo: thinking..."
TRUST_QUESTION = "Do you trust this folder? [y/n]"
MESSAGE_ECHO_LIMIT = 60
TICK = 0.1
GIT_TIMEOUT = 60.0
GT_DONE_TIMEOUT = 300.0


@dataclass(frozen=True)
class Options:
    think: float = 1.0
    nudge_think: float = 0.3
    record: Path | None = None
    ask_trust: bool = False
    task_file: Path | None = None


def parse_options(argv: Sequence[str] | None, env: Mapping[str, str]) -> Options:
    """Flags win over ``GT_DEMO_*`` variables, which win over the defaults.

    Raises ``InvalidInput`` for an unreadable variable; argparse exits 2 on a bad flag.
    """
    parser = argparse.ArgumentParser(
        prog="python -m gastown.demo_agent",
        description="A fake agent CLI with no model: runs the ~~~demo directives of a pasted "
        "[gastown] task, commits and runs `gt done`. See docs/demo-agent.md.",
    )
    parser.add_argument(
        "--think", type=_seconds_flag, metavar="SECONDS", help="busy time per task (default: $GT_DEMO_THINK or 1.0)"
    )
    parser.add_argument(
        "--nudge-think",
        type=_seconds_flag,
        metavar="SECONDS",
        help="busy time per message (default: $GT_DEMO_NUDGE_THINK or 0.3)",
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="append every submitted input to FILE as a JSON line (default: $GT_DEMO_RECORD)",
    )
    parser.add_argument(
        "--ask-trust",
        action="store_true",
        help="ask 'Do you trust this folder? [y/n]' first (also: GT_DEMO_ASK_TRUST=1)",
    )
    parser.add_argument(
        "--task-file",
        type=Path,
        metavar="FILE",
        help="headless: run the task in FILE once, then exit (as `claude -p` would)",
    )
    args = parser.parse_args(argv)
    record = args.record or (Path(env["GT_DEMO_RECORD"]) if env.get("GT_DEMO_RECORD") else None)
    return Options(
        think=args.think if args.think is not None else _env_seconds(env, "GT_DEMO_THINK", 1.0),
        nudge_think=args.nudge_think if args.nudge_think is not None else _env_seconds(env, "GT_DEMO_NUDGE_THINK", 0.3),
        record=record,
        ask_trust=args.ask_trust or env.get("GT_DEMO_ASK_TRUST", "").strip().lower() in ("1", "true", "yes"),
        task_file=args.task_file,
    )


def _parse_seconds(raw: str) -> float | None:
    try:
        value = float(raw.strip().removesuffix("s"))
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _seconds_flag(raw: str) -> float:
    value = _parse_seconds(raw)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {raw!r}")
    return value


def _env_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    value = _parse_seconds(raw)
    if value is None:
        raise InvalidInput(f"{name} must be a number of seconds, got {raw!r}", hint=f"unset {name} or set it to 0.5")
    return value


class Recorder:
    """Appends one JSON line per submitted input to ``path`` (nothing when None).

    Each record is a single write of a whole line to a file opened for append, flushed
    before returning, so records never interleave and a crash loses none.
    """

    def __init__(self, path: Path | None, now: Callable[[], float] = time.time) -> None:
        self.path = path
        self._now = now

    def record(self, kind: str, text: str) -> str | None:
        """Returns the problem when the file cannot be written."""
        if self.path is None:
            return None
        line = json.dumps({"at": self._now(), "kind": kind, "text": text}) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
        except OSError as exc:
            return f"cannot record input to {self.path}: {exc.strerror or exc}"
        return None


@dataclass
class TaskRun:
    """A task under way: its plan, how far it got, and the end-of-task switches."""

    plan: TaskPlan
    next_step: int = 0
    commit: bool = True
    done: bool = True
    blocked: str | None = None


class DemoAgent:
    """One agent session in one terminal, in ``cwd`` (a git worktree)."""

    def __init__(
        self,
        options: Options,
        terminal: Terminal,
        *,
        env: Mapping[str, str],
        cwd: Path,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._options = options
        self._terminal = terminal
        self._env = env
        self._cwd = cwd
        self._clock = clock
        self._sleep = sleep
        self._busy = BusyLine(terminal, BUSY_LABEL, clock)
        self._recorder = Recorder(options.record)
        self._issue = env.get("GT_ISSUE", "").strip() or None
        self._pending: TaskRun | None = None

    def run(self) -> None:
        """Serve inputs until the user quits; raises ``Quit`` with the exit status."""
        if self._options.ask_trust:
            self._terminal.write(f"The demo agent wants to work in {printable(str(self._cwd))}\n")
            if not self._terminal.ask_yes_no(TRUST_QUESTION):
                self._terminal.write("demo: not trusted, leaving\n")
                raise Quit(1)
            self._terminal.clear_screen()  # a dialog left on screen would be answered again
        self._banner()
        while True:
            try:
                text = self._terminal.read_submission(PROMPT)
            except Quit:
                self._terminal.write("\n")
                raise
            self._handle(text)

    def _count_tokens(self, kind: str, text: str) -> None:
        """Like a real CLI, log what this "model call" cost: a line in $GT_AGENT_HOME/usage.jsonl.

        Deterministic: a quarter token per input character, 50 output tokens per task, 10 per message.
        """
        home = self._env.get("GT_AGENT_HOME")
        if not home:
            return
        record = {"id": uuid.uuid4().hex, "model": "demo", "input": max(1, len(text) // 4),
                  "output": 50 if kind == "task" else 10}
        try:
            with open(Path(home) / "usage.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError:
            pass

    def _banner(self) -> None:
        write = self._terminal.write
        write("╭ demo agent · no model, deterministic edits\n")
        write(f"│ cwd    {printable(str(self._cwd))}\n")
        if self._issue:
            write(f"│ issue  {printable(self._issue)}\n")
        write("╰ paste a [gastown] task to run its ~~~demo blocks; anything else is a message; Ctrl-D quits\n\n")

    def run_once(self, text: str) -> None:
        """Headless: handle one input (the task) and return."""
        self._banner()
        self._handle(text)

    def _handle(self, text: str) -> None:
        kind = "task" if is_task(text) else "message"
        self._count_tokens(kind, text)
        problem = self._recorder.record(kind, text)
        if problem:
            self._say(f"demo: {problem}")
        if kind == "message":
            self._busy.start()
            self._think(self._options.nudge_think)
            self._busy.clear()
            self._say(f"demo: got message: {one_line(text, MESSAGE_ECHO_LIMIT)}")
        if self._pending is not None:
            run, self._pending = self._pending, None
            self._say("demo: picking the task up where the usage limit stopped it")
            self._execute(run)
        elif kind == "task":
            self._start_task(text)

    def _start_task(self, text: str) -> None:
        attempt = Attempt.from_env(self._env)
        plan = plan_task(text, attempt, self._issue)
        self._say(f"demo: task {self._issue + ' · ' if self._issue else ''}{plan.title}")
        for problem in plan.problems:
            self._say(f"  ! {problem}")
        for step in plan.skipped:
            self._say(f"  · skipped {step.command} @{step.condition} (attempt {attempt.number}, {attempt.kind})")
        self._busy.start()
        self._think(self._options.think)
        self._execute(TaskRun(plan))

    def _execute(self, run: TaskRun) -> None:
        self._busy.start()
        steps = run.plan.steps
        while run.next_step < len(steps):
            step = steps[run.next_step]
            run.next_step += 1
            if step.command in ("write", "append", "delete"):
                self._say(self._edit(step))
            elif step.command == "think":
                self._think(step.seconds)
            elif step.command == "crash":
                self._busy.clear()
                self._say("demo: crashing on purpose")
                raise Quit(step.code)
            elif step.command == "hang":
                self._busy.freeze(BUSY_LABEL)
                while True:
                    self._sleep(3600)
            elif step.command == "ratelimit":
                self._busy.clear()
                self._say(f"demo: usage limit reached · resets in {int(step.seconds)}s")
                self._pending = run
                return
            elif step.command == "rebase":
                self._say(self._rebase())
            elif step.command == "nocommit":
                run.commit = False
            elif step.command == "nodone":
                run.done = False
            elif step.command == "blocked":
                run.blocked = step.reason
        self._finish(run)
        self._busy.clear()

    def _finish(self, run: TaskRun) -> None:
        try:
            if run.commit:
                self._say(self._commit(commit_message(self._issue, run.plan.title)))
            else:
                self._say(f"demo: left {self._changed_paths()} changed path(s) uncommitted (nocommit)")
        except GastownError as exc:
            self._say(f"demo: {exc.message}")
        if run.done:
            self._gt_done(run.blocked)
        else:
            self._say("demo: finished; not running gt done (nodone)")

    def _think(self, seconds: float) -> None:
        deadline = self._clock() + seconds
        while (left := deadline - self._clock()) > 0:
            self._busy.tick()
            self._sleep(min(TICK, left))
        self._busy.tick()

    def _say(self, line: str) -> None:
        self._busy.say(line)

    def _edit(self, step: Directive) -> str:
        """Apply one file directive; returns the line to print. Never raises for a bad path."""
        root = self._cwd.resolve()
        target = self._cwd / step.path
        resolved = target.resolve()
        if resolved == root or not resolved.is_relative_to(root) or resolved.is_relative_to(root / ".git"):
            return f"  ! {step.command} refused: {printable(step.path)} resolves outside the worktree"
        shown = printable(step.path)
        try:
            if step.command == "delete":
                if target.is_dir() and not target.is_symlink():
                    return f"  ! delete refused: {shown} is a directory"
                if not target.exists() and not target.is_symlink():
                    return f"  · {shown} is already gone"
                target.unlink()
                return f"  ✗ deleted {shown}"
            if target.is_dir():
                return f"  ! {step.command} refused: {shown} is a directory"
            target.parent.mkdir(parents=True, exist_ok=True)
            lines = step.content.count("\n")
            plural = "" if lines == 1 else "s"
            if step.command == "write":
                target.write_bytes(step.content.encode("utf-8"))
                return f"  ✎ wrote {shown} ({lines} line{plural})"
            with open(target, "ab") as handle:
                handle.write(step.content.encode("utf-8"))
            return f"  ✎ appended to {shown} (+{lines} line{plural})"
        except OSError as exc:
            return f"  ! {step.command} {shown} failed: {exc.strerror or exc}"

    def _rebase(self) -> str:
        """Bring the branch onto the merge target, keeping this agent's side of any conflict
        (what a fix cycle after a merge conflict asks for)."""
        from gastown.git.cmd import Git

        target = f"origin/{self._env.get('GT_TARGET') or 'main'}"
        git = Git(self._cwd)
        result = git.run("-c", "core.editor=true", "rebase", "-X", "theirs", target, check=False, timeout=GIT_TIMEOUT)
        if result.ok:
            return f"demo: rebased onto {target}"
        git.run("rebase", "--abort", check=False, timeout=GIT_TIMEOUT)
        return f"demo: rebase onto {target} failed and was undone: {(result.stderr or result.stdout).strip()[-200:]}"

    def _commit(self, message: str) -> str:
        from gastown.git.cmd import Git

        git = Git(self._cwd)
        git.run("add", "-A", timeout=GIT_TIMEOUT)
        stat = git.out("diff", "--cached", "--shortstat", timeout=GIT_TIMEOUT)
        if not stat:
            return "demo: nothing changed, nothing to commit"
        known = all(
            git.run("var", ident, check=False, timeout=GIT_TIMEOUT).ok
            for ident in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT")
        )
        # A machine with no git identity must still run `gt demo`.
        identity = (
            [] if known else ["-c", "user.name=gastown demo agent", "-c", "user.email=demo-agent@gastown.invalid"]
        )
        git.run(*identity, "-c", "commit.gpgsign=false", "commit", "-q", "-m", message, timeout=GIT_TIMEOUT)
        sha = git.out("rev-parse", "--short", "HEAD", timeout=GIT_TIMEOUT)
        return f"demo: committed {sha} · {stat.strip()}"

    def _changed_paths(self) -> int:
        from gastown.git.cmd import Git

        status = Git(self._cwd).run("status", "--porcelain", timeout=GIT_TIMEOUT).stdout
        return len([line for line in status.splitlines() if line.strip()])

    def _gt_done(self, blocked: str | None) -> None:
        from gastown._internal.proc import run as run_command

        gt = shutil.which("gt", path=self._env.get("PATH"))
        if gt is None:
            self._say("demo: gt is not on PATH; cannot run gt done")
            return
        argv = [gt, "done", *(["--blocked", blocked] if blocked else [])]
        self._say("demo: running gt done" + (f" --blocked {printable(blocked)!r}" if blocked else ""))
        try:
            result = run_command(argv, cwd=self._cwd, env=dict(self._env), timeout=GT_DONE_TIMEOUT)
        except GastownError as exc:
            self._say(f"demo: gt done could not start: {exc.message}")
            return
        for line in (result.stdout + result.stderr).splitlines():
            self._say(f"  │ {printable(line)}")
        if result.timed_out:
            self._say(f"demo: gt done timed out after {int(GT_DONE_TIMEOUT)}s")
        elif result.returncode != 0:
            self._say(f"demo: gt done failed (exit status {result.returncode})")
        else:
            self._say("demo: gt done ✓")


def run_review(prompt: str, env: Mapping[str, str], cwd: Path, sleep: Callable[[float], None] = time.sleep) -> int:
    """Reviewer mode (``reviewer.py``): think ``GT_DEMO_THINK`` seconds (default 0), print
    the findings document, log the "tokens" like a task does. ``GT_DEMO_REVIEW``:
    ``edit`` writes a file into the checkout first, ``nojson``/``stray`` misanswer."""
    from gastown.demo_agent.reviewer import answer

    mode = env.get("GT_DEMO_REVIEW", "").strip().lower()
    try:
        think = _env_seconds(env, "GT_DEMO_THINK", 0.0)
    except InvalidInput as exc:
        sys.stderr.write(f"demo: {exc.message}\n")
        return int(exc.exit_code)
    sleep(think)
    if mode == "edit":
        (cwd / "demo-reviewer-was-here.txt").write_text("a reviewer must not write\n", encoding="utf-8")
    text = answer(prompt, mode)
    sys.stdout.write(text)
    sys.stdout.flush()
    home = env.get("GT_AGENT_HOME")
    if home:
        record = {"id": uuid.uuid4().hex, "model": "demo", "input": max(1, len(prompt) // 4),
                  "output": max(1, len(text) // 4)}
        try:
            with open(Path(home) / "usage.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError:
            pass
    return 0


def _quit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise Quit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo agent on this process's terminal; returns the exit status."""
    try:
        options = parse_options(argv, os.environ)
    except InvalidInput as exc:
        sys.stderr.write(f"demo: {exc.message}\n")
        return int(exc.exit_code)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _quit_on_signal)
    if options.task_file is not None:
        text = options.task_file.read_text(encoding="utf-8")
        if is_review_prompt(text):
            return run_review(text, os.environ, Path.cwd())
    terminal = Terminal()
    try:
        with terminal:
            agent = DemoAgent(options, terminal, env=os.environ, cwd=Path.cwd())
            if options.task_file is not None:
                agent.run_once(options.task_file.read_text(encoding="utf-8"))
            else:
                agent.run()
    except Quit as quit_:
        return quit_.code
    except KeyboardInterrupt:
        return 130
    return 0

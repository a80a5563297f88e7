"""``demo``: a terminal program that behaves like an agent CLI, with no model.

gastown starts it in a tmux pane like any runtime (``python -m gastown.demo_agent``),
pastes a task into its ``demo> `` prompt and watches its screen. It runs the
deterministic edits written in the issue as ``~~~demo`` blocks, commits, and runs
``gt done``; on request it also crashes, hangs, or reports a usage limit, so the
supervisors can be tested against it. ``script`` parses (pure), ``terminal`` reads keys
and pastes, ``agent`` is the loop. The user's guide is docs/demo-agent.md.
"""

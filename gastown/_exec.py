"""Trampoline tmux runs in an agent's pane: read the launch file, delete it, exec the agent.

Run as ``python -S -E gastown/_exec.py <launch.json>`` (no site, no package import), so
the agent replaces it within milliseconds and the pane's process *is* the agent. The
launch file carries the exact argv and environment, which lifts tmux's limit on command
length (a 20 KB prompt in argv is fine) and never involves a shell.
"""

import json
import os
import sys


def main() -> None:
    path = sys.argv[1]
    with open(path, encoding="utf-8") as handle:
        spec = json.load(handle)
    os.unlink(path)
    argv = spec["argv"]
    try:
        os.execve(argv[0], argv, spec["env"])
    except OSError as exc:
        sys.stderr.write(f"gastown: cannot start {argv[0]}: {exc.strerror}\n")
        sys.exit(127)


if __name__ == "__main__":
    main()

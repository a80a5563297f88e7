"""Trampoline tmux runs in an agent's pane: read the launch file, delete it, exec the agent.

Run as ``python -S -E gastown/_exec.py <launch.json>`` (no site, no package import), so
the agent replaces it within milliseconds and the pane's process *is* the agent. It first
waits for the launch file to appear: gastown renames it into place once the pane is
tagged and piped to its log. The
launch file carries the exact argv and environment, which lifts tmux's limit on command
length (a 20 KB prompt in argv is fine) and never involves a shell.
"""

import json
import os
import sys
import time

WAIT = 30.0  # gastown releases the file once the pane is tagged and piped; it never takes this long


def main() -> None:
    path = sys.argv[1]
    deadline = time.monotonic() + WAIT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.stderr.write(f"gastown: no launch file {path} after {WAIT:.0f}s; giving up\n")
            sys.exit(126)
        time.sleep(0.002)
    with open(path, encoding="utf-8") as handle:
        spec = json.load(handle)
    os.unlink(path)
    if spec.get("cwd"):
        os.chdir(spec["cwd"])
    argv = spec["argv"]
    env = spec["env"]
    if spec.get("inherit_env"):
        # An agent on a remote host: the host's own environment, minus what breaks agents,
        # plus gastown's; its program is found on the host's PATH.
        drop = set(spec.get("unset", ()))
        env = {**{k: v for k, v in os.environ.items() if k not in drop}, **env}
    try:
        if "/" in argv[0]:
            os.execve(argv[0], argv, env)
        else:
            os.execvpe(argv[0], argv, env)
    except OSError as exc:
        sys.stderr.write(f"gastown: cannot start {argv[0]}: {exc.strerror}\n")
        sys.exit(127)


if __name__ == "__main__":
    main()

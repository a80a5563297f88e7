"""A custom runtime for tests (prompt = "arg"): commits, runs `gt done`, and then, like a
real CLI sending the result to its model, stays busy a while before it records its last
answer (<town>/lastword/<spawn>.txt) and goes back to its prompt. Its busy line is
redrawn in place, as a TUI's status line is."""

import os
import subprocess
import sys
import time
from pathlib import Path

print("lastword: thinking", end="", flush=True)
Path("lastword.txt").write_text("work\n")
subprocess.run(["git", "add", "lastword.txt"], check=True)
subprocess.run(["git", "commit", "-q", "-m", "lastword's work"], check=True)
subprocess.run([sys.executable, "-m", "gastown", "done"], check=True, capture_output=True)
time.sleep(float(os.environ.get("LASTWORD_AFTER", "4")))
out = Path(os.environ["GT_TOWN"]) / "lastword" / f"{os.environ['GT_SPAWN']}.txt"
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text("the answer after gt done, recorded\n")
print("\r\x1b[2KBOT> ", end="", flush=True)
time.sleep(3600)

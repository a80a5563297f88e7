"""A custom runtime for tests (prompt = "arg"): saves argv[1] exactly, then idles."""

import os
import sys
import time
from pathlib import Path

out = Path(os.environ["GT_TOWN"]) / "received" / f"{os.environ['GT_SPAWN']}.txt"
out.parent.mkdir(parents=True, exist_ok=True)
out.write_bytes(sys.argv[1].encode("utf-8", "surrogateescape"))
print(f"argbot: got {len(sys.argv[1])} chars")
print("BOT> ", end="", flush=True)
time.sleep(3600)

"""A custom runtime for tests (prompt = "paste"): a raw-mode TUI that takes bracketed pastes.

Prints `BOT> ` when ready; each submitted input (paste and/or typed text, then Enter) is
saved as <town>/received/<spawn>-<n>.txt exactly as received.
"""

import os
import sys
import termios
import time
import tty
from pathlib import Path

START, END = b"\x1b[200~", b"\x1b[201~"
out_dir = Path(os.environ["GT_TOWN"]) / "received"
out_dir.mkdir(parents=True, exist_ok=True)
fd = sys.stdin.fileno()
old = termios.tcgetattr(fd)
tty.setraw(fd)
sys.stdout.write("\x1b[?2004h")
delay = float(os.environ.get("PASTEBOT_DELAY", "0"))
if delay:
    sys.stdout.write("pastebot: warming up\r\n")
    sys.stdout.flush()
    time.sleep(delay)
count = 0
try:
    while True:
        sys.stdout.write("BOT> ")
        sys.stdout.flush()
        buf = b""
        pasting = False
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise SystemExit(0)
            buf += chunk
            while True:
                if pasting:
                    end = buf.find(END)
                    if end < 0:
                        break
                    pasting = False
                    buf = buf[:end] + b"\x00PASTEEND\x00" + buf[end + len(END):]
                start = buf.find(START)
                if start < 0:
                    break
                pasting = True
                buf = buf[:start] + buf[start + len(START):]
            if not pasting and b"\r" in buf.replace(b"\x00PASTEEND\x00", b""):
                break
        text = buf.replace(b"\x00PASTEEND\x00", b"")
        text = text[: text.rfind(b"\r")]
        count += 1
        (out_dir / f"{os.environ['GT_SPAWN']}-{count}.txt").write_bytes(text)
        sys.stdout.write(f"\r\npastebot: got {len(text)} bytes\r\n")
finally:
    termios.tcsetattr(fd, termios.TCSADRAIN, old)

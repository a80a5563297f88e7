"""Safe text on every screen: one sanitizer (``gastown.safetext``) behind every printer.

Hostile text (OSC, CSI, BEL, a C1 control, a bidi override) goes through every listing and
show command; no raw control byte reaches stdout or stderr, and ``--json`` returns it
verbatim. Plus table tests of the sanitizer, and a guard that no command prints around
the output chokepoint.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

from gastown.safetext import json_text, one_line, visible
from gastown.views.table import format_table
from tests.helpers import gt_json, ledger_rows, retry_until, run_gt

ROOT = Path(__file__).resolve().parents[1]

OSC = "\x1b]0;pwned\x07"
CSI_CLEAR = "\x1b[2J"
CSI_RED = "\x1b[31m"
BEL = "\x07"
C1_CSI = "\x9b"
RLO = "\u202e"
LRI = "\u2066"
HOSTILE_TITLE = f"fix {OSC}it{CSI_CLEAR} now{CSI_RED} red{BEL}{C1_CSI}6n {RLO}evil{LRI} [bold]x[/]"
HOSTILE_BODY = f"first line {OSC}\nsecond\tline {CSI_RED}red{CSI_CLEAR}\r\nthird {C1_CSI}{RLO}gnol\x00nul\x7fdel"

# -- the sanitizer, by table -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "line", "text"),
    [
        ("plain words", "plain words", "plain words"),
        ("osc \x1b]0;pwned\x07", "osc \\x1b]0;pwned\\x07", "osc \\x1b]0;pwned\\x07"),
        ("csi \x1b[2J\x1b[31m", "csi \\x1b[2J\\x1b[31m", "csi \\x1b[2J\\x1b[31m"),
        ("c1 \x9b6n \x85", "c1 \\x9b6n \\x85", "c1 \\x9b6n \\x85"),
        ("del \x7f nul \x00", "del \\x7f nul \\x00", "del \\x7f nul \\x00"),
        ("bidi \u202a\u202b\u202c\u202d\u202e", "bidi \\u202a\\u202b\\u202c\\u202d\\u202e",
         "bidi \\u202a\\u202b\\u202c\\u202d\\u202e"),
        ("isolates \u2066\u2067\u2068\u2069", "isolates \\u2066\\u2067\\u2068\\u2069",
         "isolates \\u2066\\u2067\\u2068\\u2069"),
        ("marks \u200e\u200f\u061c", "marks \\u200e\\u200f\\u061c", "marks \\u200e\\u200f\\u061c"),
        ("zero width \u200b\ufeff", "zero width \\u200b\\ufeff", "zero width \\u200b\\ufeff"),
        ("lines\u2028para\u2029", "lines\\u2028para\\u2029", "lines\\u2028para\\u2029"),
        ("newline\nand\ttab", "newline and tab", "newline\nand\ttab"),
        ("crlf\r\nline", "crlf line", "crlf\nline"),
        ("overwrite\rEVIL", "overwrite\\x0dEVIL", "overwrite\\x0dEVIL"),
        ("lone surrogate \udcff", "lone surrogate \\udcff", "lone surrogate \\udcff"),
        ("unicode é 漢字 🚀 שלום", "unicode é 漢字 🚀 שלום", "unicode é 漢字 🚀 שלום"),
        ("markup [bold]x[/] $(rm) `id`", "markup [bold]x[/] $(rm) `id`", "markup [bold]x[/] $(rm) `id`"),
        ("", "", ""),
    ],
    ids=["plain", "osc", "csi", "c1", "del-nul", "bidi-overrides", "bidi-isolates", "bidi-marks", "zero-width",
         "line-separators", "newline-tab", "crlf", "carriage-return", "surrogate", "unicode", "markup", "empty"],
)
def test_visible(raw: str, line: str, text: str) -> None:
    assert visible(raw) == line
    assert visible(raw, multiline=True) == text
    assert not unsafe(visible(raw)) and not unsafe(visible(raw, multiline=True), multiline=True)


@pytest.mark.parametrize(
    ("raw", "limit", "expected"),
    [
        ("  many   spaces\n\n lines ", 60, "many spaces lines"),
        ("x" * 10, 5, "xxxx…"),
        (f"a{OSC}b", 60, "a\\x1b]0;pwned\\x07b"),
        (None, 10, ""),
    ],
    ids=["folded", "cut", "escaped", "none"],
)
def test_one_line(raw: str | None, limit: int, expected: str) -> None:
    assert one_line(raw, limit) == expected


def test_json_text_keeps_values_verbatim_and_the_terminal_safe() -> None:
    document = {"title": HOSTILE_TITLE, "body": HOSTILE_BODY, "list": [C1_CSI, RLO], "n": 3}
    encoded = json_text(document)
    assert json.loads(encoded) == document
    assert not unsafe(encoded, multiline=True)
    assert "é" in json_text({"t": "é"}), "readable text stays readable"


def test_tables_and_the_rich_console_escape_what_they_are_given() -> None:
    lines = format_table(["ID", "TITLE"], [["a-1", HOSTILE_TITLE]], color=True)
    assert "\\x1b]0;pwned\\x07" in lines[1]
    assert not unsafe(re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(lines)), multiline=True)

    from rich.text import Text

    from gastown.cli._rich import SafeConsole

    out = io.StringIO()
    SafeConsole(file=out, width=200, color_system="truecolor", force_terminal=True).print(Text(HOSTILE_TITLE, style="red"))
    printed = out.getvalue()
    assert "\\x1b]0;pwned" in printed and "\\x9b6n" in printed and "\\u202e" in printed  # (rich drops BEL itself)
    assert not unsafe(re.sub(r"\x1b\[[0-9;]*m", "", printed), multiline=True), "only rich's own colour codes"


def test_no_command_prints_around_the_chokepoint() -> None:
    """Only ``cli/_output.py`` writes to stdout/stderr; every other module goes through it."""
    writes = re.compile(r"sys\.(stdout|stderr)\.write|(?<![.\w])print\(|\becho\(|\bsecho\(|\bConsole\(")
    offenders = []
    for path in [*sorted((ROOT / "gastown" / "cli").glob("*.py")), *sorted((ROOT / "gastown" / "views").glob("*.py"))]:
        if path.name in ("_output.py", "_rich.py"):
            continue
        if path.name == "relay.py":  # prints what the Mayor's chokepoint made, after re-checking it (test_relay.py)
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if writes.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


# -- every screen, for real --------------------------------------------------------------------


def unsafe(text: str, *, multiline: bool = False) -> list[str]:
    """The characters of ``text`` that must never reach a terminal raw."""
    allowed = "\n\t" if multiline else ""
    return [ch for ch in text if (ord(ch) < 0x20 and ch not in allowed) or 0x7F <= ord(ch) <= 0x9F
            or 0x202A <= ord(ch) <= 0x202E or 0x2066 <= ord(ch) <= 0x2069]


def raw_bytes_problems(data: bytes) -> list[str]:
    """Raw control bytes (C0 but newline and tab, DEL), then C1 and bidi characters."""
    problems = [f"byte 0x{b:02x}" for b in data if (b < 0x20 and b not in (0x0A, 0x09)) or b == 0x7F]
    problems += [f"U+{ord(ch):04X}" for ch in data.decode("utf-8", "replace") if unsafe(ch, multiline=True)]
    return problems


HOSTILE_AGENT = """
[agents.hostile]
command = [{python}, {script}]
prompt = "paste"
ready_delay = "1h"
"""
AGENT_SCRIPT = """import sys, time
sys.stdout.write({line!r})
sys.stdout.flush()
time.sleep(600)
"""


def failed_mr(town: Path, issue: str, polecat: str, detail: str) -> str:
    """A merge request of ``issue`` that failed its gates with ``detail`` as the reason."""
    from gastown.context import Context
    from gastown.ledger.mrs import record_mr, set_mr_state
    from gastown.states import MRState
    from gastown.town import Town

    ctx = Context(Town(town))
    with ctx.ledger.write() as conn:
        mr, _ = record_mr(conn, rig="app", issue=issue, polecat=polecat, spawn=None, branch=f"polecat/{polecat}/{issue}",
                          commit_sha="0" * 40, target="main", priority=2, fix_cycle=0, now=ctx.now())
        set_mr_state(conn, mr.id, MRState.TESTING, now=ctx.now())
        set_mr_state(conn, mr.id, MRState.FAILED, now=ctx.now(), detail=detail)
    return mr.id


@pytest.mark.tmux
def test_hostile_text_reaches_no_screen_raw_and_json_keeps_it(rig_town: Path, tmux_socket: str) -> None:
    town = rig_town
    script = town / "hostile_agent.py"
    script.write_text(AGENT_SCRIPT.format(line=f"agent says {OSC}{CSI_RED}{C1_CSI}{RLO}done\n"))
    with (town / "gastown.toml").open("a") as handle:
        handle.write(HOSTILE_AGENT.format(python=json.dumps(sys.executable), script=json.dumps(str(script))))
    issue = gt_json("issue", "create", HOSTILE_TITLE, "--body", "-", cwd=town, input=HOSTILE_BODY)["id"]
    other = gt_json("issue", "create", "a second issue", cwd=town)["id"]
    convoy = gt_json("convoy", "create", HOSTILE_TITLE, issue, other, cwd=town)["id"]
    mail = gt_json("mail", "send", "human", "-s", HOSTILE_TITLE, "-m", "-", cwd=town, input=HOSTILE_BODY)["id"]
    escalation = gt_json("escalate", HOSTILE_TITLE, "--issue", issue, cwd=town)["id"]
    slung = gt_json("sling", issue, "--agent", "hostile", cwd=town)
    polecat = f"{slung['rig']}/{slung['polecat']}"
    mr = failed_mr(town, issue, slung["polecat"], HOSTILE_BODY)
    retry_until(lambda: "agent says" in (run_gt("agents", cwd=town).stdout), timeout=30, what="the agent's hostile line")

    screens = [
        ["issue", "list"], ["issue", "show", issue], ["convoy", "list"], ["convoy", "show", convoy],
        ["mail", "inbox", "--all"], ["mail", "read", mail], ["escalate", "list"], ["status"],
        ["feed", "--plain", "--once"], ["feed", "--once"], ["agents"], ["mq", "list"], ["mq", "show", mr],
        ["polecat", "list"], ["costs"], ["costs", "--by", "issue"], ["rig", "list"], ["refinery", "status"],
        ["issue", "show", f"app-{RLO}{OSC}"],  # an error message that quotes what was typed
        [f"no{OSC}such{C1_CSI}command"],  # a usage error quoting it
    ]
    seen_escaped = {}
    for args in screens:
        result = run_gt(*args, cwd=town)
        for name, stream in (("stdout", result.stdout), ("stderr", result.stderr)):
            problems = raw_bytes_problems(stream.encode("utf-8", "surrogateescape"))
            assert problems == [], f"gt {' '.join(args)}: raw {problems[:5]} on {name}:\n{stream[:2000]}"
        seen_escaped[" ".join(args[:2])] = "\\x1b]0;pwned\\x07" in result.stdout + result.stderr
    for shown in ("issue list", "issue show", "convoy list", "convoy show", "mail inbox", "mail read",
                  "escalate list", "status", "feed --plain", "mq show"):
        assert seen_escaped[shown], f"gt {shown} should show the escape sequence visibly"
    assert "\\x9b" in run_gt("agents", cwd=town).stdout, "agent output is shown escaped too"
    body_shown = run_gt("issue", "show", issue, cwd=town).stdout
    assert "first line \\x1b]0;pwned\\x07\nsecond\tline" in body_shown, "a body keeps its newlines and tabs"

    assert gt_json("issue", "show", issue, cwd=town)["title"] == HOSTILE_TITLE
    assert gt_json("issue", "show", issue, cwd=town)["body"] == HOSTILE_BODY
    assert [i["title"] for i in gt_json("issue", "list", cwd=town) if i["id"] == issue] == [HOSTILE_TITLE]
    assert gt_json("mail", "read", mail, cwd=town)["subject"] == HOSTILE_TITLE
    assert gt_json("mail", "read", mail, cwd=town)["body"] == HOSTILE_BODY
    assert gt_json("convoy", "show", convoy, cwd=town)["name"] == HOSTILE_TITLE
    assert [e["message"] for e in gt_json("escalate", "list", cwd=town) if e["id"] == escalation] == [HOSTILE_TITLE]
    assert [m["detail"] for m in gt_json("mq", "list", cwd=town) if m["id"] == mr] == [HOSTILE_BODY]
    titles = [a["title"] for a in gt_json("status", cwd=town)["agents"]]
    assert HOSTILE_TITLE in titles
    assert ledger_rows(town, "SELECT title FROM issues WHERE id = ?", issue)[0]["title"] == HOSTILE_TITLE
    assert polecat in run_gt("polecat", "list", cwd=town).stdout

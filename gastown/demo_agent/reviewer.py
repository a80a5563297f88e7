"""The demo agent's reviewer mode: deterministic review rules instead of a model.

A prompt whose first line starts with ``[gastown] review`` (what gastown's review gate
sends to the runtime's headless command) is answered with a findings document. The
rules read only the lines the diff *adds* (so every finding points at a changed line):

=================  ==========  ===========  ====================================================
rule               severity    category     what it matches on an added line
=================  ==========  ===========  ====================================================
eval               critical    security     ``eval(`` or ``exec(``
password           critical    security     a password/secret/token/api key set to a literal
shell              critical    security     ``shell=True`` or ``os.system(`` with a formatted string
session id         critical    security     a session id or token from ``random`` or the clock
forbid             critical    guidelines   a line holding a ``forbid: TEXT`` text of REVIEW.md
dead code          warning     bugs         ``if False:`` / ``if 0:``, or a line after ``return``
duplicate          warning     style        3+ added lines repeated elsewhere in the same file
abstraction        warning     style        a ``...Factory``/``Manager``/``Abstract...`` class, ``ABC``
debug print        suggestion  style        ``print(`` mentioning debug
sloppy name        nitpick     style        ``tmp``, ``foo``, ``data2``, ``x1``, ``do_stuff``... assigned or defined
=================  ==========  ===========  ====================================================

The model verdict follows the worst finding (critical → ``do_not_merge``, warning →
``address_before_merge``, else ``approve``). The style (from the prompt's ``Style:``
line) changes only the words of the summary and explanations: ``roast`` findings are
the same findings, with the same severities, as ``balanced`` ones.

For tests and demos of the gate's defences, ``GT_DEMO_REVIEW`` makes it misbehave:
``edit`` (writes a file into its checkout first), ``nojson`` (prose, no document),
``stray`` (adds findings on a file and a line outside the diff). ``GT_DEMO_THINK``
seconds are spent "thinking" first (a reviewer of fixed latency).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HEADLINE = "[gastown] review"
_OPEN = re.compile(r"^(`{3,})([\w.-]*)[ \t]*$")
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")

_EVAL = re.compile(r"\b(eval|exec)\(")
_PASSWORD = re.compile(r"""\b\w*(password|passwd|secret|api_key|apikey|token)\w*\s*[:=]\s*(["'])[^"']{3,}\2""", re.I)
_SHELL = re.compile(r"shell\s*=\s*True|os\.system\(")
_FORMATTED = re.compile(r"""\bf["']|\.format\(|%\s*\(|["']\s*\+|\+\s*\w""")
_SESSION = re.compile(r"\b\w*(session|sid|token)\w*\s*=.*\b(random\.\w+\(|time\.time\(\)|uuid\.uuid1\()", re.I)
_DEAD_IF = re.compile(r"^\s*if\s+(False|0)\s*:")
_RETURN = re.compile(r"^(\s*)(return\b|raise\b)")
_ABSTRACT = re.compile(r"^\s*class\s+(\w*(Factory|Manager|Provider|Strategy|Builder|Wrapper)|Abstract\w*|Base\w+)\b|\(ABC\)|@abstractmethod")
_DEBUG_PRINT = re.compile(r"\bprint\(.*debug", re.I)
_SLOPPY = re.compile(r"^\s*(?:def\s+(do_stuff|do_it|stuff|thing|foo|bar|func\d*)\s*\(|(tmp|temp|foo|bar|baz|stuff|thing|data\d|x\d|val\d)\s*=)")

TONE: dict[str, dict[str, str]] = {
    "balanced": {
        "eval": "Evaluating text as code runs whatever an attacker manages to put in it.",
        "password": "A credential in the source is readable by everyone with the repository and cannot be rotated.",
        "shell": "A formatted string given to a shell lets its input add commands of its own (command injection).",
        "session id": "Random and clock values are predictable: an attacker can guess other users' session ids.",
        "forbid": "REVIEW.md forbids this in the project.",
        "dead code": "This code can never run; it misleads readers and hides bugs.",
        "duplicate": "The same lines appear twice; a fix to one copy will miss the other.",
        "abstraction": "A layer with one implementation adds indirection without a benefit.",
        "debug print": "Debug output left in the code ends up in users' terminals and logs.",
        "sloppy name": "The name says nothing about what the value is.",
        "summary_bad": "The change has problems that must be fixed before it can merge.",
        "summary_meh": "The change works, but leaves things worth tidying before it merges.",
        "summary_ok": "The change is small, clear and ready to merge.",
        "praise": "Small, focused commits.",
    },
    "roast": {
        "eval": "eval() on input: why not hand the attacker your keyboard and save everyone time?",
        "password": "A password in the source. Bold. The whole internet thanks you for the free login.",
        "shell": "shell=True with a formatted string: a command injection wrapped in a bow.",
        "session id": "Session ids from random() or the clock: guessable enough to be a party game.",
        "forbid": "REVIEW.md says no, and you did it anyway. Rebellious.",
        "dead code": "This code is deader than a disco in a morgue: nothing will ever run it.",
        "duplicate": "Copy, paste, repeat: the same lines twice, so every bug gets a twin.",
        "abstraction": "A Factory for one thing: enterprise architecture for a to-do list.",
        "debug print": "Debug prints in a commit: printf debugging, now shipped to production.",
        "sloppy name": "A variable named like a placeholder in a tutorial from 1998.",
        "summary_bad": "This would get the pager going at 3 a.m. Do NOT merge it.",
        "summary_meh": "It runs, in the way a car with three wheels technically drives.",
        "summary_ok": "Annoyingly, I found nothing to roast. Ship it.",
        "praise": "The commit message is almost as good as the code is short.",
    },
}
TONE["strict"] = TONE["balanced"]
TONE["lenient"] = TONE["balanced"]

FIXES = {
    "eval": "Parse the input explicitly (int(), float(), json.loads()) instead of evaluating it.",
    "password": "Read the secret from the environment or a secrets store; never commit it.",
    "shell": "Pass an argument list to subprocess.run() with shell=False; never format input into a command.",
    "session id": "Use secrets.token_urlsafe() for session ids and tokens.",
    "forbid": "Remove it, as REVIEW.md asks.",
    "dead code": "Delete the unreachable code.",
    "duplicate": "Move the repeated lines into one function and call it twice.",
    "abstraction": "Use the one concrete function directly; add a layer when a second implementation exists.",
    "debug print": "Remove the print, or use logging at debug level.",
    "sloppy name": "Name it after what it holds.",
}

RULES: dict[str, tuple[str, str, str]] = {  # rule: (severity, category, title)
    "eval": ("critical", "security", "eval/exec on input"),
    "password": ("critical", "security", "hard-coded credential"),
    "shell": ("critical", "security", "command injection through a shell"),
    "session id": ("critical", "security", "predictable session id"),
    "forbid": ("critical", "guidelines", "forbidden by REVIEW.md"),
    "dead code": ("warning", "bugs", "dead code"),
    "duplicate": ("warning", "style", "duplicated code"),
    "abstraction": ("warning", "style", "needless layer of abstraction"),
    "debug print": ("suggestion", "style", "debug print left in"),
    "sloppy name": ("nitpick", "style", "sloppy name"),
}


@dataclass(frozen=True)
class Hit:
    rule: str
    file: str
    start: int
    end: int


def is_review_prompt(text: str) -> bool:
    return text.lstrip().startswith(HEADLINE)


def fenced_blocks(text: str) -> dict[str, str]:
    """The prompt's backtick-fenced blocks by info string (``diff``, ``review.md``, ``issue``).

    A block runs to the next line that is exactly its own fence, so fences inside it
    (shorter, as gastown makes them) are content.

    >>> fenced_blocks("x\\n````diff\\n```diff\\nin\\n```\\n````\\ny")
    {'diff': '```diff\\nin\\n```'}
    """
    blocks: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, info = match.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == fence), len(lines))
        blocks.setdefault(info, "\n".join(lines[i + 1:end]))
        i = end + 1
    return blocks


def added_lines(diff: str) -> dict[str, list[tuple[int, str]]]:
    """``{new path: [(line, text), ...]}`` of every added line of a unified diff."""
    files: dict[str, list[tuple[int, str]]] = {}
    path, line = None, 0
    for raw in diff.split("\n"):
        if raw.startswith("+++ "):
            target = raw[4:].strip().strip('"')
            path = None if target == "/dev/null" else target.removeprefix("b/")
            if path is not None:
                files.setdefault(path, [])
        elif (hunk := _HUNK.match(raw)) is not None:
            line = int(hunk.group(1))
        elif path is not None and raw.startswith("+"):
            files[path].append((line, raw[1:]))
            line += 1
        elif path is not None and raw.startswith(" "):
            line += 1
    return files


def find_problems(files: Mapping[str, list[tuple[int, str]]], forbidden: Iterable[str] = ()) -> list[Hit]:
    """Every rule's hits on the added lines, in file and line order. Pure."""
    banned = [f for f in forbidden if f]
    hits: list[Hit] = []
    for path, lines in sorted(files.items()):
        hits += _line_rules(path, lines, banned)
        hits += _duplicates(path, lines)
    return sorted(hits, key=lambda h: (h.file, h.start, h.rule))


def _line_rules(path: str, lines: list[tuple[int, str]], banned: list[str]) -> list[Hit]:
    hits: list[Hit] = []
    after_return: tuple[int, int] | None = None  # (indent, line) of the last return/raise
    for number, text in lines:
        checks = {
            "eval": bool(_EVAL.search(text)),
            "password": bool(_PASSWORD.search(text)),
            "shell": bool(_SHELL.search(text) and _FORMATTED.search(text)),
            "session id": bool(_SESSION.search(text)),
            "forbid": any(b in text for b in banned),
            "dead code": bool(_DEAD_IF.match(text)) or _unreachable(text, after_return, number),
            "abstraction": bool(_ABSTRACT.search(text)),
            "debug print": bool(_DEBUG_PRINT.search(text)),
            "sloppy name": bool(_SLOPPY.match(text)),
        }
        hits += [Hit(rule, path, number, number) for rule, hit in checks.items() if hit]
        returned = _RETURN.match(text)
        if returned is not None:
            after_return = (len(returned.group(1)), number)
        elif text.strip():
            after_return = None
    return hits


def _unreachable(text: str, after_return: tuple[int, int] | None, number: int) -> bool:
    """A line right after a ``return``/``raise`` at the same indentation cannot run."""
    if after_return is None or not text.strip() or number != after_return[1] + 1:
        return False
    indent = len(text) - len(text.lstrip())
    return indent == after_return[0] and not text.lstrip().startswith(("def ", "class ", "@", "#", "else", "elif",
                                                                         "except", "finally"))


def _duplicates(path: str, lines: list[tuple[int, str]], size: int = 3) -> list[Hit]:
    """The second copy of any run of ``size`` consecutive added non-blank lines."""
    seen: dict[tuple[str, ...], int] = {}
    hits: list[Hit] = []
    covered = 0
    for i in range(len(lines) - size + 1):
        window = lines[i:i + size]
        if any(not t.strip() for _, t in window) or window[-1][0] - window[0][0] != size - 1:
            continue
        key = tuple(t.strip() for _, t in window)
        first = seen.setdefault(key, window[0][0])
        if first != window[0][0] and window[0][0] > covered and window[0][0] >= first + size:
            hits.append(Hit("duplicate", path, window[0][0], window[-1][0]))
            covered = window[-1][0]
    return hits


def verdict_of(hits: Iterable[Hit]) -> str:
    severities = {RULES[h.rule][0] for h in hits}
    if "critical" in severities:
        return "do_not_merge"
    if "warning" in severities:
        return "address_before_merge"
    return "approve"


def style_of(prompt: str) -> str:
    match = re.search(r"^Style: (\w+)\.", prompt, re.M)
    return match.group(1) if match and match.group(1) in TONE else "balanced"


def forbidden_texts(review_md: str) -> list[str]:
    """The ``forbid: TEXT`` lines of a REVIEW.md (the demo reviewer's own guideline rule).

    >>> forbidden_texts("# Rules\\nforbid: TODO\\n  forbid:  print(  \\n")
    ['TODO', 'print(']
    """
    return [m.group(1).strip() for m in re.finditer(r"^\s*forbid:\s*(.+?)\s*$", review_md, re.M)]


def review(prompt: str, mode: str = "") -> dict[str, object]:
    """The findings document for a review prompt (``mode``: ``stray`` adds invented references)."""
    blocks = fenced_blocks(prompt)
    files = added_lines(blocks.get("diff", ""))
    hits = find_problems(files, forbidden_texts(blocks.get("review.md", "")))
    tone = TONE[style_of(prompt)]
    findings: list[dict[str, object]] = [
        {"file": h.file, "start_line": h.start, "end_line": h.end, "severity": RULES[h.rule][0],
         "category": RULES[h.rule][1], "title": RULES[h.rule][2], "explanation": tone[h.rule], "fix": FIXES[h.rule]}
        for h in hits
    ]
    if mode == "stray":
        some = next(iter(sorted(files)), "README.md")
        findings += [
            {"file": "not/in/the/diff.py", "start_line": 1, "end_line": 1, "severity": "critical",
             "category": "bugs", "title": "a file the change never touched", "explanation": "invented", "fix": "-"},
            {"file": some, "start_line": 9000, "end_line": 9001, "severity": "critical", "category": "bugs",
             "title": "a line far from the change", "explanation": "invented", "fix": "-"},
        ]
    verdict = verdict_of(hits)
    summary = {"do_not_merge": tone["summary_bad"], "address_before_merge": tone["summary_meh"]}.get(
        verdict, tone["summary_ok"])
    return {"verdict": verdict, "summary": summary, "praise": tone["praise"], "findings": findings}


def answer(prompt: str, mode: str = "") -> str:
    """What the demo reviewer prints: a line of its own, then the document in a json fence."""
    if mode == "nojson":
        return "demo reviewer: I looked at the change and have thoughts, but no JSON today.\n"
    document = review(prompt, mode)
    count = len(document["findings"])  # type: ignore[arg-type]
    return (f"demo reviewer: {count} finding(s), verdict {document['verdict']}\n\n"
            f"```json\n{json.dumps(document, indent=2, ensure_ascii=False)}\n```\n")

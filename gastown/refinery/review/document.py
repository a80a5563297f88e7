"""The reviewer's answer: one JSON findings document, found in its output and validated
strictly; findings kept only where they point into the diff; gastown's own verdict. Pure.

The document (``ReviewDocument``)::

    {"verdict": "approve" | "address_before_merge" | "do_not_merge",
     "summary": str, "praise": str,
     "findings": [{"file": str, "start_line": int, "end_line": int,
                   "severity": "critical" | "warning" | "suggestion" | "nitpick",
                   "category": str, "title": str, "explanation": str, "fix": str}]}

It is taken from the reviewer's stdout: the last ```json fenced block that holds a JSON
object, else the last JSON object printed (one with a ``verdict`` preferred). Types
are checked strictly (no ``"12"`` for a line number, no unknown severity); keys the
schema does not name are ignored. The model's verdict is kept, but the *effective*
verdict is gastown's: ``do_not_merge`` when any kept finding is at or above
``block_on``, else ``approve``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gastown.refinery.review.diff import Diff

SEVERITIES: tuple[str, ...] = ("critical", "warning", "suggestion", "nitpick")
SEVERITY_RANK = {"nitpick": 0, "suggestion": 1, "warning": 2, "critical": 3}
MODEL_VERDICTS = ("approve", "address_before_merge", "do_not_merge")
SLACK = 3  # a finding may sit this many lines away from a changed line
_FENCE = re.compile(r"^(?P<ticks>`{3,}|~{3,})[ \t]*json[ \t]*\n(?P<body>.*?)^(?P=ticks)[ \t]*$",
                    re.MULTILINE | re.DOTALL | re.IGNORECASE)


class DocumentError(ValueError):
    """The output holds no usable findings document; the message says what was wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class FindingIn(_Strict):
    file: str = Field(min_length=1)
    start_line: int = Field(ge=1)
    end_line: int = Field(ge=1)
    severity: Literal["critical", "warning", "suggestion", "nitpick"]
    category: str
    title: str = Field(min_length=1)
    explanation: str
    fix: str

    @model_validator(mode="after")
    def _ordered(self) -> FindingIn:
        if self.end_line < self.start_line:
            raise ValueError("end_line is before start_line")
        return self


class ReviewDocument(_Strict):
    verdict: Literal["approve", "address_before_merge", "do_not_merge"]
    summary: str
    praise: str = ""
    findings: list[FindingIn]


@dataclass(frozen=True)
class Finding:
    """A finding from the model (``source="model"``) or an analyzer (``analyzer:<tool>``)."""

    file: str
    start_line: int
    end_line: int
    severity: str
    category: str
    title: str
    explanation: str
    fix: str
    source: str = "model"

    def blocking(self, block_on: str) -> bool:
        return is_blocking(self.severity, block_on)


def is_blocking(severity: str, block_on: str) -> bool:
    """Whether a finding of ``severity`` stops a merge under ``block_on``.

    >>> is_blocking("critical", "critical"), is_blocking("warning", "critical"), is_blocking("warning", "warning")
    (True, False, True)
    """
    return SEVERITY_RANK[severity] >= SEVERITY_RANK[block_on]


def effective_verdict(findings: Iterable[Finding], block_on: str) -> str:
    """gastown's verdict: ``do_not_merge`` if any finding is at or above ``block_on``, else ``approve``.

    >>> f = Finding("a.py", 1, 1, "warning", "bugs", "t", "e", "f")
    >>> effective_verdict([f], "critical"), effective_verdict([f], "warning"), effective_verdict([], "warning")
    ('approve', 'do_not_merge', 'approve')
    """
    return "do_not_merge" if any(f.blocking(block_on) for f in findings) else "approve"


def extract_json(output: str) -> Any:
    """The document in a reviewer's output: the last ```json fenced block holding a JSON
    object, else the last JSON object printed (one with a ``verdict`` key preferred).
    Raises ``DocumentError`` when there is none.

    >>> extract_json('thinking {"a": 1}\\n```json\\n{"verdict": "approve"}\\n```\\nbye')
    {'verdict': 'approve'}
    >>> extract_json('{"verdict": "approve", "findings": [{"x": 1}]} trailing {"other": 2}')
    {'verdict': 'approve', 'findings': [{'x': 1}]}
    """
    for match in reversed(list(_FENCE.finditer(output))):
        try:
            value = json.loads(match.group("body"))
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    objects = list(_top_level_objects(output))
    if not objects:
        raise DocumentError("the reviewer printed no JSON document" if output.strip() else "the reviewer printed nothing")
    with_verdict = [o for o in objects if "verdict" in o]
    return (with_verdict or objects)[-1]


def _top_level_objects(text: str) -> Iterable[dict[str, Any]]:
    decoder = json.JSONDecoder()
    i = text.find("{")
    while i != -1:
        try:
            value, end = decoder.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        if isinstance(value, dict):
            yield value
        i = text.find("{", end)


def parse_document(output: str) -> ReviewDocument:
    """The validated document in ``output``; ``DocumentError`` naming the first problem."""
    raw = extract_json(output)
    try:
        return ReviewDocument.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the document"
        raise DocumentError(f"the findings document is invalid at {where}: {first['msg']}") from None


def model_findings(document: ReviewDocument) -> list[Finding]:
    return [Finding(f.file, f.start_line, f.end_line, f.severity, f.category, f.title, f.explanation, f.fix)
            for f in document.findings]


def normalize_path(path: str, diff: Diff, root: str | None = None) -> str:
    """The diff's path a finding means: ``./x`` and ``b/x`` (git's prefix) are read as ``x``;
    an absolute path inside the checkout ``root`` is made relative.

    >>> from gastown.refinery.review.diff import parse_diff
    >>> d = parse_diff("diff --git a/x.py b/x.py\\n--- a/x.py\\n+++ b/x.py\\n@@ -1 +1 @@\\n-a\\n+b\\n")
    >>> normalize_path("./x.py", d), normalize_path("b/x.py", d), normalize_path("/co/x.py", d, "/co")
    ('x.py', 'x.py', 'x.py')
    """
    candidate = path.strip()
    if root and candidate.startswith(root.rstrip("/") + "/"):
        candidate = candidate[len(root.rstrip("/")) + 1:]
    candidate = str(PurePosixPath(candidate)) if candidate else candidate
    if diff.file(candidate) is None and candidate.startswith("b/") and diff.file(candidate[2:]) is not None:
        candidate = candidate[2:]
    return candidate


def keep_in_diff(findings: Sequence[Finding], diff: Diff, *, root: str | None = None,
                 slack: int = SLACK) -> tuple[list[Finding], int]:
    """The findings that point into the diff (paths normalized), and how many were dropped."""
    kept: list[Finding] = []
    for finding in findings:
        path = normalize_path(finding.file, diff, root)
        if diff.covers(path, finding.start_line, finding.end_line, slack):
            kept.append(replace(finding, file=path))
    return kept, len(findings) - len(kept)


def by_severity(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then by file and line (a stable order to show and store)."""
    return sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], f.file, f.start_line, f.end_line))

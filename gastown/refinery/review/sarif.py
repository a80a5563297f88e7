"""Analyzers' SARIF 2.1.0 output as review findings. Pure.

Each result becomes one finding: its file (the first location's artifact URI, made
relative to the checkout), its region's lines, a severity from its level (``error`` →
warning, ``warning`` → suggestion, ``note`` → nitpick by default; ``[rigs.X.review]
analyzer_levels`` overrides, and ``"none"`` drops the level), the rule id and message
as title and explanation. A result without a location or a start line is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from gastown.refinery.review.document import Finding

DEFAULT_LEVELS = {"error": "warning", "warning": "suggestion", "note": "nitpick", "none": "none"}


class SarifError(ValueError):
    """The analyzer's output is not a SARIF log."""


def parse_sarif(text: str, *, levels: Mapping[str, str] | None = None, root: str = "",
                analyzer: str = "analyzer") -> list[Finding]:
    """Findings of every run's results in ``text``; ``SarifError`` if it is not SARIF.

    >>> doc = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "ruff"}}, "results": [
    ...     {"ruleId": "F401", "level": "error", "message": {"text": "os imported but unused"},
    ...      "locations": [{"physicalLocation": {"artifactLocation": {"uri": "file:///co/a.py"},
    ...                                          "region": {"startLine": 3}}}]}]}]}
    >>> [(f.file, f.start_line, f.severity, f.title, f.source) for f in parse_sarif(json.dumps(doc), root="/co")]
    [('a.py', 3, 'warning', 'F401: os imported but unused', 'analyzer:ruff')]
    """
    mapping = {**DEFAULT_LEVELS, **(levels or {})}
    try:
        log = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SarifError(f"its output is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(log, dict) or not isinstance(log.get("runs"), list):
        raise SarifError("its output is JSON but not a SARIF log (no \"runs\" array)")
    findings: list[Finding] = []
    for run in log["runs"]:
        if not isinstance(run, dict):
            continue
        tool = _dig(run, "tool", "driver", "name") or analyzer
        for result in run.get("results") or []:
            finding = _finding(result, mapping, root, str(tool))
            if finding is not None:
                findings.append(finding)
    return findings


def _finding(result: Any, mapping: Mapping[str, str], root: str, tool: str) -> Finding | None:
    if not isinstance(result, dict):
        return None
    severity = mapping.get(str(result.get("level") or "warning"), "suggestion")
    if severity == "none":
        return None
    locations = result.get("locations") or []
    physical = locations[0].get("physicalLocation") if locations and isinstance(locations[0], dict) else None
    if not isinstance(physical, dict):
        return None
    uri = _dig(physical, "artifactLocation", "uri")
    start = _dig(physical, "region", "startLine")
    if not isinstance(uri, str) or not isinstance(start, int) or start < 1:
        return None
    end = _dig(physical, "region", "endLine")
    end = end if isinstance(end, int) and end >= start else start
    message = str(_dig(result, "message", "text") or "").strip()
    rule = str(result.get("ruleId") or tool)
    first = message.splitlines()[0] if message else ""
    return Finding(
        file=_relative(uri, root), start_line=start, end_line=end, severity=severity, category=f"analyzer:{tool}",
        title=f"{rule}: {first}" if first else rule, explanation=message or rule, fix="",
        source=f"analyzer:{tool}",
    )


def _relative(uri: str, root: str) -> str:
    """A SARIF artifact URI as a path relative to the checkout.

    >>> _relative("file:///co/src/a%20b.py", "/co"), _relative("src/a.py", "/co")
    ('src/a b.py', 'src/a.py')
    """
    path = unquote(urlsplit(uri).path) if uri.startswith("file:") else unquote(uri)
    base = root.rstrip("/") + "/"
    if root and path.startswith(base):
        path = path[len(base):]
    return path.removeprefix("./")


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value

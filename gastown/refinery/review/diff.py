"""A unified diff (``git diff``) as files, hunks and changed lines: what a review may
point at. Pure.

Line numbers are those of the *new* side (the MR's version of a file). A hunk's
*changed lines* are its added lines plus, for each run of removed lines, the new-side
line where the removal happened; a finding is *in the diff* when it names a file of
the diff (by its new path) and its lines come within ``slack`` lines of a hunk's
changed lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Hunk:
    """One ``@@`` hunk: its new-side start and the new-side lines it changed (sorted)."""

    new_start: int
    changed: tuple[int, ...]

    def near(self, start: int, end: int, slack: int) -> bool:
        """Whether lines ``start..end`` come within ``slack`` lines of a changed line.

        >>> Hunk(10, (12, 13)).near(16, 20, 3), Hunk(10, (12, 13)).near(17, 20, 3)
        (True, False)
        """
        if not self.changed:
            return False
        return start <= self.changed[-1] + slack and end >= self.changed[0] - slack


@dataclass(frozen=True)
class FileDiff:
    path: str  # the new path; "" when the file was deleted
    old_path: str  # "" when the file was added
    hunks: tuple[Hunk, ...] = ()
    added: tuple[tuple[int, str], ...] = ()  # (new line number, text) of every added line
    binary: bool = False


@dataclass(frozen=True)
class Diff:
    files: tuple[FileDiff, ...] = ()
    added_lines: int = 0
    removed_lines: int = 0
    by_path: dict[str, FileDiff] = field(default_factory=dict, compare=False, repr=False)

    @property
    def changed_lines(self) -> int:
        """Lines added plus lines removed: what ``max_diff_lines`` is measured in."""
        return self.added_lines + self.removed_lines

    def file(self, path: str) -> FileDiff | None:
        """The file of the diff at new path ``path`` (None for a file not in the diff)."""
        return self.by_path.get(path)

    def covers(self, path: str, start: int, end: int, slack: int = 3) -> bool:
        """Whether ``path`` lines ``start..end`` are in the diff (see the module docstring)."""
        found = self.by_path.get(path)
        return found is not None and any(h.near(start, end, slack) for h in found.hunks)


def parse_diff(text: str) -> Diff:
    """Parse ``git diff`` output (any number of files, ``a/``/``b/`` prefixes, C-quoted
    paths, binary files, renames). Never raises: a line it does not know is skipped.

    >>> d = parse_diff("diff --git a/x.py b/x.py\\n--- a/x.py\\n+++ b/x.py\\n@@ -1,2 +1,3 @@\\n a\\n+b\\n c\\n")
    >>> d.file("x.py").added, d.changed_lines, d.covers("x.py", 5, 5), d.covers("x.py", 6, 6)
    (((2, 'b'),), 1, True, False)
    """
    files: list[FileDiff] = []
    added_total = removed_total = 0
    current: dict[str, object] | None = None
    hunks: list[Hunk] = []
    added: list[tuple[int, str]] = []
    changed: list[int] = []
    new_line = 0
    hunk_start = 0

    def close_hunk() -> None:
        nonlocal changed
        if current is not None and hunk_start:
            hunks.append(Hunk(hunk_start, tuple(sorted(set(changed)))))
        changed = []

    def close_file() -> None:
        nonlocal hunks, added, current
        close_hunk()
        if current is not None:
            files.append(FileDiff(str(current["path"]), str(current["old"]), tuple(hunks), tuple(added),
                                  bool(current["binary"])))
        current, hunks, added = None, [], []

    for line in text.splitlines():
        if line.startswith("diff --git "):
            close_file()
            old, new = _git_header_paths(line[len("diff --git "):])
            current = {"path": new, "old": old, "binary": False}
            hunk_start = 0
            continue
        if current is None:
            continue
        if line.startswith("--- ") and not hunk_start:
            current["old"] = _side_path(line[4:], "a/")
        elif line.startswith("+++ ") and not hunk_start:
            current["path"] = _side_path(line[4:], "b/")
        elif line.startswith("rename to ") and not hunk_start:
            current["path"] = _unquote(line[len("rename to "):])
        elif line.startswith("deleted file mode"):
            current["path"] = ""
        elif line.startswith("Binary files ") or line == "GIT binary patch":
            current["binary"] = True
        elif (match := _HUNK.match(line)) is not None:
            close_hunk()
            hunk_start = max(1, int(match.group(3)))
            new_line = int(match.group(3))
        elif hunk_start and line.startswith("+"):
            added.append((new_line, line[1:]))
            changed.append(new_line)
            new_line += 1
            added_total += 1
        elif hunk_start and line.startswith("-"):
            changed.append(max(1, new_line))
            removed_total += 1
        elif hunk_start and line.startswith(" "):
            new_line += 1
    close_file()
    return Diff(tuple(files), added_total, removed_total, {f.path: f for f in files if f.path})


def _git_header_paths(rest: str) -> tuple[str, str]:
    """``a/old b/new`` (either may be C-quoted) of a ``diff --git`` line; best effort."""
    if rest.startswith('"'):
        end = _closing_quote(rest)
        old, new = _unquote(rest[: end + 1]), rest[end + 2:]
    else:
        half = len(rest) // 2  # "a/p b/p": unambiguous when old == new, the usual case
        old, new = rest[:half], rest[half + 1:]
        if " b/" in rest and not (old.startswith("a/") and new.startswith("b/")):
            old, new = rest.split(" b/", 1)[0], "b/" + rest.split(" b/", 1)[1]
    return old.removeprefix("a/"), _unquote(new).removeprefix("b/")


def _side_path(raw: str, prefix: str) -> str:
    path = _unquote(raw.split("\t", 1)[0] if not raw.startswith('"') else raw)
    return "" if path == "/dev/null" else path.removeprefix(prefix)


def _closing_quote(text: str) -> int:
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return len(text) - 1


def _unquote(path: str) -> str:
    r"""A path as git prints it, C-quoted when it holds special characters.

    >>> _unquote('"b/caf\\303\\251 \\"x\\".txt"'), _unquote("b/plain.txt")
    ('b/café "x".txt', 'b/plain.txt')
    """
    if len(path) < 2 or not (path.startswith('"') and path.endswith('"')):
        return path
    body, out, i = path[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567" and i + 3 < len(body) + 1 and all(c in "01234567" for c in body[i + 1:i + 4]):
                out.append(int(body[i + 1:i + 4], 8))
                i += 4
                continue
            out += _ESCAPES.get(nxt, nxt).encode("utf-8")
            i += 2
            continue
        out += ch.encode("utf-8")
        i += 1
    return out.decode("utf-8", "replace")

"""Plain-text tables and colours for the terminal, without rich. Pure.

Every listing (`gt issue list`, `gt mq list`, ...) and the `gt status` page are aligned
columns; rich would cost each of them ~45 ms of start-up to draw what ``format_table``
draws here. Cells are sanitized (``gastown.safetext.visible``) *before* they are
measured and coloured, so outside text can neither break the layout nor reach the
terminal as a control sequence; colour codes are added afterwards, by gastown only.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from gastown.safetext import visible

COLUMN_GAP = "  "
MIN_SHRUNK = 8  # a column that gives way keeps at least this many characters
_SGR = {
    "bold": "1", "dim": "2", "underline": "4", "red": "31", "green": "32", "yellow": "33", "blue": "34",
    "magenta": "35", "cyan": "36",
}

Cell = str | tuple[str, str]  # text, or (text, style) with style words from _SGR: "bold red"


def paint(text: str, style: str, *, color: bool) -> str:
    """``text`` in ``style`` (``"bold red"``) when ``color``; unchanged otherwise.

    >>> paint("dead", "bold red", color=True), paint("dead", "bold red", color=False)
    ('\\x1b[1;31mdead\\x1b[0m', 'dead')
    """
    codes = ";".join(_SGR[word] for word in style.split() if word in _SGR)
    return f"\x1b[{codes}m{text}\x1b[0m" if color and codes and text else text


def format_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    width: int | None = None,
    wide: Sequence[int] | None = None,
    color: bool = False,
    header_style: str = "bold",
) -> list[str]:
    """The lines of a table: header, then rows; every cell one safe line, padded by display
    width. Past ``width``, the ``wide`` columns (default: the last) give way first, widest
    first, their cells cut with ``…`` (then the others if need be); without ``width``
    nothing is cut.

    >>> format_table(["ID", "TITLE"], [["a-1", "fix\\x1b[2J it"], ["a-22", "日本"]])
    ['ID    TITLE', 'a-1   fix\\\\x1b[2J it', 'a-22  日本']
    >>> format_table(["ID", "TITLE"], [["a-1", "a rather long title"]], width=20)
    ['ID   TITLE', 'a-1  a rather long…']
    """
    texts = [[visible(cell if isinstance(cell, str) else cell[0]) for cell in row] for row in rows]
    styles = [["" if isinstance(cell, str) else cell[1] for cell in row] for row in rows]
    widths = [max(display_width(row[i]) for row in [list(columns), *texts]) for i in range(len(columns))]
    if width is not None:
        _shrink(widths, [len(c) for c in columns], width, range(len(columns))[-1:] if wide is None else wide)
    heads = [fit(c, widths[i]) for i, c in enumerate(columns)]
    lines = [_line([paint(h, header_style, color=color) for h in heads], heads, widths)]
    for row_texts, row_styles in zip(texts, styles, strict=True):
        cells = [paint(fit(text, widths[i]), row_styles[i], color=color) for i, text in enumerate(row_texts)]
        lines.append(_line(cells, row_texts, widths))
    return lines


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide (CJK) characters 2, combining marks 0.

    >>> display_width("abc"), display_width("日本"), display_width("e\\u0301")
    (3, 4, 1)
    """
    if text.isascii():
        return len(text)
    return sum(_char_width(ch) for ch in text)


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns with ``…`` when it is longer.

    >>> fit("abcdef", 4), fit("abc", 4), fit("日本語", 5)
    ('abc…', 'abc', '日本…')
    """
    if display_width(text) <= width:
        return text
    kept, used = [], 0
    for ch in text:
        used += _char_width(ch)
        if used > width - 1:
            break
        kept.append(ch)
    return "".join(kept).rstrip() + "…"


def _line(cells: list[str], plain: Sequence[str], widths: list[int]) -> str:
    """Cells joined and padded by their *plain* width (colour codes take no columns)."""
    padded = [cell + " " * max(0, widths[i] - min(display_width(plain[i]), widths[i])) for i, cell in enumerate(cells[:-1])]
    return COLUMN_GAP.join([*padded, cells[-1]]).rstrip()


def _shrink(widths: list[int], headers: list[int], width: int, wide: Sequence[int]) -> None:
    """Narrow columns, widest first, until a row fits ``width``: the ``wide`` ones down to
    their header (at least ``MIN_SHRUNK``), then, if that is not enough, any column down
    to ``MIN_SHRUNK``, then down to 2 characters."""
    over = sum(widths) + len(COLUMN_GAP) * (len(widths) - 1) - width
    everyone = range(len(widths))
    for columns, floors in (
        (wide, [max(h, MIN_SHRUNK) for h in headers]),
        (everyone, [MIN_SHRUNK] * len(widths)),
        (everyone, [2] * len(widths)),
    ):
        while over > 0:
            candidates = [i for i in columns if widths[i] > floors[i]]
            if not candidates:
                break
            widest = max(candidates, key=lambda i: widths[i])
            runner_up = max((widths[i] for i in candidates if i != widest), default=0)
            step = min(over, widths[widest] - floors[widest], max(1, widths[widest] - runner_up))
            widths[widest] -= step
            over -= step


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1

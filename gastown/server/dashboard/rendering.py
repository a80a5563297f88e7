"""The dashboard's Jinja environment: autoescape everywhere, and filters for outside text.

Every template is autoescaped (a string is HTML-escaped unless it is ``Markup`` made
here), undefined names are errors, and outside text goes through ``lit`` (one line,
disguising characters shown as escapes) or ``block`` (several lines, spacing kept)
before the escaping. Forms carry ``csrf``, a sentinel replaced per viewer by
``personalize()``: fragments are rendered once for every page, tokens differ per page.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from gastown.config.durations import format_duration
from gastown.ledger.timefmt import iso
from gastown.server.dashboard.text import visible_block
from gastown.views.render import STATE_MARKS, literal

# Autoescaping turns any "<gt-csrf>" in outside text into "&lt;gt-csrf&gt;", so only the
# templates' own sentinel is ever replaced.
CSRF_SENTINEL = Markup("<gt-csrf>")


def ago(seconds: float | None) -> str:
    """``3m``, ``1h5m``; ``-`` when unknown."""
    return "-" if seconds is None else format_duration(max(0.0, seconds))


def clock(ts: float | None) -> str:
    """``HH:MM:SS`` in the server's local time (the page rewrites it to the viewer's)."""
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def stamp(ts: float | None) -> str:
    """``YYYY-MM-DD HH:MM`` in the server's local time."""
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def lit(text: Any, limit: int = 400) -> str:
    return literal(None if text is None else str(text), limit)


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The one Environment (templates are compiled once per process)."""
    env = Environment(
        loader=PackageLoader("gastown.server.dashboard", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        lit=lit, block=visible_block, ago=ago, clock=clock, stamp=stamp, iso=iso,
        mark=lambda state: STATE_MARKS.get(str(state), "·"),
    )
    env.globals["csrf"] = CSRF_SENTINEL
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def personalize(html: str, csrf_token: str) -> str:
    """``html`` with this viewer's CSRF token in every form (tokens are URL-safe base64)."""
    return html.replace(str(CSRF_SENTINEL), csrf_token)

"""A rig's review settings, resolved from ``[rigs.<name>.review]``. Pure.

No table: the rig has no review gate (``gate_settings`` returns None), since every
review costs tokens. `gt review run` still reviews on demand, with the table's values
or the defaults, and the rig's runtime as reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gastown.config.schema import ReviewConfig, TownConfig
from gastown.errors import InvalidInput, NotFound

STYLES = ("balanced", "strict", "lenient", "roast")


@dataclass(frozen=True)
class ReviewSettings:
    rig: str
    agent: str
    style: str
    block_on: str
    focus: tuple[str, ...]
    max_diff_lines: int
    max_reviews: int
    timeout: float
    analyzers: tuple[str, ...]
    analyzer_levels: dict[str, str]

    def with_style(self, style: str | None) -> ReviewSettings:
        """These settings in another style (``InvalidInput`` for an unknown one)."""
        if style is None:
            return self
        if style not in STYLES:
            raise InvalidInput(f"{style!r} is not a review style", hint="use one of: " + ", ".join(STYLES))
        return replace(self, style=style)

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent, "style": self.style, "block_on": self.block_on, "focus": list(self.focus),
            "max_diff_lines": self.max_diff_lines, "max_reviews": self.max_reviews, "timeout": self.timeout,
            "analyzers": list(self.analyzers), "analyzer_levels": dict(self.analyzer_levels),
        }


def gate_settings(config: TownConfig, rig: str) -> ReviewSettings | None:
    """The review gate of ``rig``, or None when it has no ``[rigs.<rig>.review]`` table.

    >>> cfg = TownConfig.model_validate({"rigs": {"app": {"repo": "/r", "agent": "codex", "review": {}}, "b": {"repo": "/b"}}})
    >>> s = gate_settings(cfg, "app")
    >>> (s.agent, s.style, s.block_on, s.max_reviews, s.timeout), gate_settings(cfg, "b")
    (('codex', 'balanced', 'critical', 4, 900.0), None)
    """
    rig_cfg = _rig(config, rig)
    if rig_cfg.review is None:
        return None
    return _resolve(config, rig, rig_cfg.review)


def on_demand_settings(config: TownConfig, rig: str) -> ReviewSettings:
    """What `gt review run` uses: the rig's review table, or the defaults."""
    rig_cfg = _rig(config, rig)
    return _resolve(config, rig, rig_cfg.review or ReviewConfig())


def _rig(config: TownConfig, rig: str) -> Any:
    rig_cfg = config.rigs.get(rig)
    if rig_cfg is None:
        known = ", ".join(sorted(config.rigs)) or "none yet"
        raise NotFound(f"no rig named {rig!r} in this town (rigs: {known})", hint="see `gt rig list`")
    return rig_cfg


def _resolve(config: TownConfig, rig: str, review: ReviewConfig) -> ReviewSettings:
    rig_cfg = config.rigs[rig]
    return ReviewSettings(
        rig=rig,
        agent=review.agent or rig_cfg.agent or config.town.default_agent,
        style=review.style,
        block_on=review.block_on,
        focus=tuple(review.focus),
        max_diff_lines=review.max_diff_lines,
        max_reviews=review.max_reviews,
        timeout=review.timeout,
        analyzers=tuple(review.analyzers),
        analyzer_levels=review.analyzer_levels.model_dump(),
    )

"""A rig's effective refinery settings: its own ``[rigs.<name>]`` keys, else ``[refinery]``.

Pure: reads a validated ``TownConfig`` (or its plain ``Settings``) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gastown.errors import NotFound

if TYPE_CHECKING:
    from gastown.config.schema import TownConfig
    from gastown.config.settings import Settings


@dataclass(frozen=True)
class RefinerySettings:
    rig: str
    target: str
    gates: tuple[str, ...]
    gate_timeout: float
    merge: str
    batch: int
    max_fix_cycles: int

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "gates": list(self.gates),
            "gate_timeout": self.gate_timeout,
            "merge": self.merge,
            "batch": self.batch,
            "max_fix_cycles": self.max_fix_cycles,
        }


def resolve_settings(config: TownConfig | Settings, rig: str) -> RefinerySettings:
    """The settings the refinery of ``rig`` runs with; ``NotFound`` for an unknown rig.

    >>> from gastown.config.schema import TownConfig
    >>> cfg = TownConfig.model_validate({"rigs": {"app": {"repo": "/r", "batch": 8}}, "refinery": {"merge": "squash"}})
    >>> s = resolve_settings(cfg, "app")
    >>> (s.target, s.batch, s.merge, s.max_fix_cycles, s.gates)
    ('main', 8, 'squash', 3, ())
    """
    rig_cfg = config.rigs.get(rig)
    if rig_cfg is None:
        known = ", ".join(sorted(config.rigs)) or "none yet"
        raise NotFound(f"no rig named {rig!r} in this town (rigs: {known})", hint="see `gt rig list`")
    defaults = config.refinery
    return RefinerySettings(
        rig=rig,
        target=rig_cfg.branch,
        gates=tuple(rig_cfg.gates),
        gate_timeout=rig_cfg.gate_timeout if rig_cfg.gate_timeout is not None else defaults.gate_timeout,
        merge=rig_cfg.merge or defaults.merge,
        batch=rig_cfg.batch if rig_cfg.batch is not None else defaults.batch,
        max_fix_cycles=rig_cfg.max_fix_cycles if rig_cfg.max_fix_cycles is not None else defaults.max_fix_cycles,
    )

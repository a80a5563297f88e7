"""The validated config as plain data, for commands that only read it.

``Settings`` holds what listings, `gt status`, `gt agents`, `gt mq` and friends need from
gastown.toml (rig names, prefixes, branches, caps, budgets, merge-queue and patrol
settings, the ``[agents.*]`` tables' screen and start-up keys, ``[prices]``), with every
default already applied, so an agent's helpers (`gt _start`, `gt _end`, `gt done`, `gt
nudge`) resolve its runtime and price its usage without pydantic. It is built from a
validated ``TownConfig`` and round-trips through JSON, so ``gastown.config.cache`` can hand
it to a command without importing pydantic. Model endpoints are not here: a runtime
resolved from ``Settings`` has ``model = None``, so launching an agent reads the full
``ctx.config``.

Attribute names are those of ``gastown.config.schema`` (``settings.rigs["app"].branch``,
``settings.town.max_polecats``, ``settings.refinery.batch``), so code that reads either
reads the same words; ``tests/test_config_cache.py`` checks they stay in step. One
difference: ``RigSettings.prefix`` is the rig's *effective* prefix, never ``None``.
They are ``NamedTuple``s, not dataclasses: a command imports this on every start, and
a frozen dataclass costs several times as much to define.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from gastown.config.schema import AgentConfig, TownConfig


class TownSettings(NamedTuple):
    name: str | None
    default_agent: str
    max_polecats: int
    budget: float | None


class RigSettings(NamedTuple):
    repo: str
    branch: str
    prefix: str
    agent: str | None
    max_polecats: int | None
    budget: float | None
    gates: tuple[str, ...]
    gate_timeout: float | None
    merge: str | None
    batch: int | None
    max_fix_cycles: int | None
    mode: str | None
    names: tuple[str, ...] | None
    prompt_template: str | None


class RefineryDefaults(NamedTuple):
    batch: int
    merge: str
    gate_timeout: float
    max_fix_cycles: int


class WitnessSettings(NamedTuple):
    patrol_interval: float
    spawn_grace: float
    stall_after: float
    idle_after: float
    max_nudges: int
    max_restarts: int
    rate_limit_backoff: float
    idle_reap_after: float
    stop_timeout: float


class ServerSettings(NamedTuple):
    enabled: bool
    host: str
    port: int
    token_env: str | None
    public_url: str | None


class PriceSettings(NamedTuple):
    """US dollars per million tokens (``[prices."<model>"]``; None: derived from input)."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


class DialogSettings(NamedTuple):
    match: str
    keys: tuple[str, ...]


class AgentSettings(NamedTuple):
    """``[agents.<name>]`` as written, without its model endpoint (see the module doc)."""

    preset: str | None
    command: tuple[str, ...] | None
    prompt: Literal["arg", "paste"] | None
    ready: str | None
    busy: str | None
    ready_delay: float | None
    env: dict[str, str]
    dialogs: tuple[DialogSettings, ...] | None
    rate_limit: tuple[str, ...] | None
    mode: str | None
    headless: tuple[str, ...] | None
    submit: str | None
    model: None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentSettings:
        dialogs = data["dialogs"]
        return cls(**{
            **data, "command": _tuple(data["command"]), "headless": _tuple(data["headless"]),
            "rate_limit": _tuple(data["rate_limit"]), "env": dict(data["env"]),
            "dialogs": tuple(DialogSettings(d[0], tuple(d[1])) for d in dialogs) if dialogs is not None else None,
        })


class Settings(NamedTuple):
    town: TownSettings
    refinery: RefineryDefaults
    witness: WitnessSettings
    rigs: dict[str, RigSettings]
    server: ServerSettings
    triggers: tuple[str, ...]  # the names of the [triggers.*] tables
    agents: dict[str, AgentSettings]
    prices: dict[str, PriceSettings]

    def rig_prefix(self, rig: str) -> str:
        """The issue-id prefix of ``rig`` (``KeyError`` for an unknown rig, as ``TownConfig``)."""
        return self.rigs[rig].prefix

    def rig_prefixes(self) -> dict[str, str]:
        """Every rig's issue prefix, by rig name."""
        return {rig: settings.prefix for rig, settings in self.rigs.items()}

    @classmethod
    def from_config(cls, config: TownConfig) -> Settings:
        """The settings of a validated config."""
        town, refinery, witness = config.town, config.refinery, config.witness
        return cls(
            town=TownSettings(town.name, town.default_agent, town.max_polecats, town.budget),
            refinery=RefineryDefaults(refinery.batch, refinery.merge, refinery.gate_timeout, refinery.max_fix_cycles),
            witness=WitnessSettings(**{name: getattr(witness, name) for name in WitnessSettings._fields}),
            rigs={
                name: RigSettings(
                    repo=rig.repo, branch=rig.branch, prefix=config.rig_prefix(name), agent=rig.agent,
                    max_polecats=rig.max_polecats, budget=rig.budget, gates=tuple(rig.gates),
                    gate_timeout=rig.gate_timeout, merge=rig.merge, batch=rig.batch,
                    max_fix_cycles=rig.max_fix_cycles, mode=rig.mode,
                    names=tuple(rig.names) if rig.names is not None else None, prompt_template=rig.prompt_template,
                )
                for name, rig in config.rigs.items()
            },
            server=ServerSettings(**{name: getattr(config.server, name) for name in ServerSettings._fields}),
            triggers=tuple(config.triggers),
            agents={name: _agent_settings(agent) for name, agent in config.agents.items()},
            prices={model: PriceSettings(p.input, p.output, p.cache_read, p.cache_write)
                    for model, p in config.prices.items()},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "town": self.town._asdict(), "refinery": self.refinery._asdict(), "witness": self.witness._asdict(),
            "rigs": {name: rig._asdict() for name, rig in self.rigs.items()},
            "server": self.server._asdict(), "triggers": list(self.triggers),
            "agents": {name: agent._asdict() for name, agent in self.agents.items()},
            "prices": {model: price._asdict() for model, price in self.prices.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        """Settings from ``to_json()``'s output; ``TypeError``/``KeyError`` if the shape differs."""
        rigs = {}
        for name, rig in data["rigs"].items():
            names = rig["names"]
            rigs[name] = RigSettings(**{**rig, "gates": tuple(rig["gates"]), "names": tuple(names) if names is not None else None})
        return cls(
            town=TownSettings(**data["town"]),
            refinery=RefineryDefaults(**data["refinery"]),
            witness=WitnessSettings(**data["witness"]),
            rigs=rigs,
            server=ServerSettings(**data["server"]),
            triggers=tuple(data["triggers"]),
            agents={name: AgentSettings.from_json(agent) for name, agent in data["agents"].items()},
            prices={model: PriceSettings(**price) for model, price in data["prices"].items()},
        )


def _tuple(value: list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


def _agent_settings(agent: AgentConfig) -> AgentSettings:
    """The settings of one validated ``AgentConfig``."""
    return AgentSettings(
        preset=agent.preset, command=_tuple(agent.command), prompt=agent.prompt, ready=agent.ready, busy=agent.busy,
        ready_delay=agent.ready_delay, env=dict(agent.env),
        dialogs=tuple(DialogSettings(d.match, tuple(d.keys)) for d in agent.dialogs) if agent.dialogs is not None else None,
        rate_limit=_tuple(agent.rate_limit), mode=agent.mode, headless=_tuple(agent.headless), submit=agent.submit,
    )

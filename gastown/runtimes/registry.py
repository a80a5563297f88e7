"""Resolve a runtime name to a ``Runtime``: a built-in preset merged with ``[agents.<name>]``.

Resolution reads either the validated ``TownConfig`` or the cached ``Settings`` (same
names), so an agent's helpers resolve its runtime without importing pydantic. Only
``model`` (the endpoint) needs the full config; launching reads that one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from gastown.errors import ConfigError, NotFound
from gastown.runtimes.presets import PRESETS, DialogSpec, Preset, PromptMode

if TYPE_CHECKING:
    from gastown.config.schema import AgentConfig, EndpointConfig, TownConfig
    from gastown.config.settings import AgentSettings, Settings

    # Either door to gastown.toml (see the module doc).
    AnyConfig = TownConfig | Settings


@dataclass(frozen=True)
class Runtime:
    name: str
    command: tuple[str, ...]
    prompt: PromptMode
    ready: str | None
    busy: str | None
    ready_delay: float
    env: dict[str, str] = field(default_factory=dict)
    dialogs: tuple[DialogSpec, ...] = ()
    rate_limit: tuple[str, ...] = ()
    escape_cancels: bool = False
    cli: str | None = None
    mode: str = "tui"
    headless: tuple[str, ...] = ()
    submit: str = "agent"
    model: EndpointConfig | None = None

    @cached_property
    def ready_re(self) -> re.Pattern[str] | None:
        return re.compile(self.ready, re.MULTILINE) if self.ready else None

    @cached_property
    def busy_re(self) -> re.Pattern[str] | None:
        return re.compile(self.busy, re.MULTILINE) if self.busy else None

    @cached_property
    def rate_limit_res(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p, re.MULTILINE | re.IGNORECASE) for p in self.rate_limit)

    @cached_property
    def dialog_res(self) -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
        return tuple((re.compile(d.match, re.MULTILINE), d.keys) for d in self.dialogs)


def known_runtimes(config: AnyConfig) -> list[str]:
    return sorted(set(PRESETS) | set(config.agents))


def require_runtime(config: AnyConfig, name: str) -> Runtime:
    if name not in PRESETS and name not in config.agents:
        raise NotFound(
            f"no runtime named {name!r}",
            hint="built-in: " + ", ".join(sorted(PRESETS)) + "; or define [agents." + name + "] in gastown.toml",
        )
    return resolve_runtime(config, name)


def resolve_runtime(config: AnyConfig, name: str) -> Runtime:
    user: AgentConfig | AgentSettings | None = config.agents.get(name)
    base_name = (user.preset if user and user.preset else name)
    base: Preset | None = PRESETS.get(base_name)
    if user is not None and user.preset and base is None:
        raise ConfigError(
            f"agents.{name}.preset: no built-in preset named {user.preset!r}",
            hint="presets: " + ", ".join(sorted(PRESETS)),
        )
    if base is None and (user is None or user.command is None):
        raise ConfigError(
            f"agents.{name}.command is required for a runtime that is not a built-in preset",
            hint='set command = [...] or preset = "claude" (or another preset)',
        )
    command = tuple(user.command) if user and user.command else (base.command if base else ())
    prompt: PromptMode = (user.prompt if user and user.prompt else None) or (base.prompt if base else "paste")
    ready = user.ready if user and user.ready is not None else (base.ready if base else None)
    busy = user.busy if user and user.busy is not None else (base.busy if base else None)
    delay = user.ready_delay if user and user.ready_delay is not None else (base.ready_delay if base else 5.0)
    env = {**(base.env if base else {}), **(user.env if user else {})}
    dialogs = (
        tuple(DialogSpec(d.match, tuple(d.keys)) for d in user.dialogs)
        if user and user.dialogs is not None
        else (base.dialogs if base else ())
    )
    rate_limit = (
        tuple(user.rate_limit) if user and user.rate_limit is not None else (base.rate_limit if base else ())
    )
    headless = tuple(user.headless) if user and user.headless else (base.headless if base else ())
    return Runtime(
        name=name,
        command=command,
        prompt=prompt,
        ready=ready,
        busy=busy,
        ready_delay=delay,
        env=env,
        dialogs=dialogs,
        rate_limit=rate_limit,
        escape_cancels=base.escape_cancels if base else False,
        cli=base.cli if base else None,
        mode=(user.mode if user and user.mode else "tui"),
        headless=headless,
        submit=(user.submit if user and user.submit else (base.submit if base else "agent")),
        model=user.model if user else None,
    )


def runtime_for(config: AnyConfig, rig: str, agent: str | None = None) -> Runtime:
    """The runtime a rig's polecat runs, with the rig's ``mode`` applied.

    In headless mode the CLI gets the prompt in argv, runs the task and exits; there is
    no screen to wait on, so readiness is immediate.
    """
    from dataclasses import replace

    runtime = require_runtime(config, rig_runtime_name(config, rig, agent))
    mode = config.rigs[rig].mode or runtime.mode
    if mode != "headless":
        return runtime
    if not runtime.headless:
        raise ConfigError(
            f"runtime {runtime.name!r} has no headless command",
            hint=f"set [agents.{runtime.name}].headless, or use mode = \"tui\"",
        )
    return replace(
        runtime, mode="headless", command=runtime.headless, prompt="arg", ready=None, busy=None, ready_delay=0.0,
        dialogs=(),
    )


def rig_runtime_name(config: AnyConfig, rig: str, override: str | None = None) -> str:
    return override or config.rigs[rig].agent or config.town.default_agent


def spawn_runtime(config: AnyConfig, rig: str, agent: str) -> Runtime:
    """The runtime of a spawn (its rig's mode applied), even if the rig left the config."""
    if rig in config.rigs:
        return runtime_for(config, rig, agent)
    return resolve_runtime(config, agent)

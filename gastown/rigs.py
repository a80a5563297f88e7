"""Towns and rigs on disk: `gt init`, `gt rig add/list/remove`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gastown.config.schema import default_prefix
from gastown.names import NAME_RE, PREFIX_RE, RESERVED_RIG_NAMES
from gastown.context import Context
from gastown.errors import Conflict, InvalidInput, NotFound
from gastown.town import Town
from gastown.ledger.mrs import count_by_state
from gastown.ledger.work import count_hooks


def town_template() -> str:
    return resources.files("gastown").joinpath("templates/town.toml").read_text(encoding="utf-8")


@dataclass(frozen=True)
class InitResult:
    town: Town
    created: bool


def init_town(directory: Path) -> InitResult:
    """Create a town in ``directory`` (made if missing). Idempotent: an existing town is
    only brought up to date (state dirs, ledger schema), its config left untouched."""
    from gastown.ledger.db import create_ledger

    root = directory.expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise InvalidInput(f"{root} exists and is not a directory", hint="pick another path")
    root.mkdir(parents=True, exist_ok=True)
    town = Town(root)
    created = not town.config_path.exists()
    if created:
        town.config_path.write_text(town_template(), encoding="utf-8")
    for sub in (town.state_dir, town.logs_dir, town.prompts_dir, town.locks_dir, town.run_dir):
        sub.mkdir(parents=True, exist_ok=True)
    create_ledger(town.ledger_path)
    return InitResult(town, created)


@dataclass(frozen=True)
class RigInfo:
    name: str
    repo: str
    branch: str
    prefix: str
    agent: str
    hub: Path
    hub_present: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "repo": self.repo,
            "branch": self.branch,
            "prefix": self.prefix,
            "agent": self.agent,
            "hub": str(self.hub),
            "hub_present": self.hub_present,
        }


def list_rigs(ctx: Context) -> list[RigInfo]:
    cfg = ctx.config
    return [
        RigInfo(
            name=name,
            repo=rig.repo,
            branch=rig.branch,
            prefix=cfg.rig_prefix(name),
            agent=rig.agent or cfg.town.default_agent,
            hub=ctx.town.hub_path(name),
            hub_present=ctx.town.hub_path(name).is_dir(),
        )
        for name, rig in sorted(cfg.rigs.items())
    ]


def add_rig(
    ctx: Context,
    name: str,
    source: str,
    *,
    branch: str | None,
    prefix: str | None,
    agent: str | None,
    cwd: Path,
) -> RigInfo:
    """Clone ``source`` as the rig's hub and add ``[rigs.<name>]`` to gastown.toml.

    Validates everything before cloning; removes the clone again if the config edit fails.
    """
    from gastown._internal.locks import file_lock
    from gastown.config.edit import add_rig_table, rewrite_config
    from gastown.git.hub import clone_hub, normalize_source

    if not NAME_RE.match(name) or name in RESERVED_RIG_NAMES:
        raise InvalidInput(
            f"{name!r} is not a valid rig name",
            hint="use lowercase letters, digits, '-' and '_' (at most 40), and not 'mayor'",
        )
    if prefix is not None and not PREFIX_RE.match(prefix):
        raise InvalidInput(f"{prefix!r} is not a valid prefix", hint="use 1-12 lowercase letters or digits, starting with a letter")
    if agent is not None:
        from gastown.runtimes.registry import require_runtime

        require_runtime(ctx.config, agent)
    with file_lock(ctx.town.locks_dir / "config.lock", what="the town config"):
        cfg = ctx.reload_config()
        if name in cfg.rigs:
            raise Conflict(f"the town already has a rig named {name!r}", hint="pick another name or `gt rig remove` it first")
        chosen_prefix = prefix or default_prefix(name)
        for other in cfg.rigs:
            if cfg.rig_prefix(other) == chosen_prefix:
                raise Conflict(
                    f"rig {other!r} already uses the prefix {chosen_prefix!r}", hint="pass another one with --prefix"
                )
        hub = ctx.town.hub_path(name)
        if ctx.town.rig_dir(name).exists():
            raise Conflict(f"{ctx.town.rig_dir(name)} already exists", hint="move it away or pick another rig name")
        repo = normalize_source(source, cwd)
        try:
            target = clone_hub(repo, hub, branch=branch)
            text = ctx.town.config_path.read_text(encoding="utf-8")
            values: dict[str, Any] = {"repo": repo, "branch": target, "prefix": chosen_prefix, "agent": agent}
            rewrite_config(ctx.town.config_path, add_rig_table(text, name, values))
        except BaseException:
            shutil.rmtree(ctx.town.rig_dir(name), ignore_errors=True)
            raise
        ctx.reload_config()
    return next(info for info in list_rigs(ctx) if info.name == name)


def remove_rig(ctx: Context, name: str, *, keep_files: bool) -> Path | None:
    """Drop ``[rigs.<name>]`` from the config and move ``<town>/<name>`` (hub, worktrees,
    refinery) aside to ``.gastown/removed/<name>-<time>``; returns where it went.

    Nothing is deleted: the hub holds every branch, archive and MR pin, so removing a rig
    can never lose work (delete the moved directory yourself once you are sure). Refuses
    while the rig has issues on a polecat's hook or merge requests waiting.
    """
    import time

    from gastown._internal.locks import file_lock
    from gastown.config.edit import remove_rig_table, rewrite_config

    with file_lock(ctx.town.locks_dir / "config.lock", what="the town config"):
        cfg = ctx.reload_config()
        if name not in cfg.rigs:
            raise NotFound(f"no rig named {name!r} in this town", hint="see `gt rig list`")
        _refuse_if_busy(ctx, name)
        text = ctx.town.config_path.read_text(encoding="utf-8")
        rewrite_config(ctx.town.config_path, remove_rig_table(text, name))
        ctx.reload_config()
    rig_dir = ctx.town.rig_dir(name)
    if keep_files or not rig_dir.exists():
        return None
    dest = ctx.town.state_dir / "removed" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(rig_dir), dest)
    return dest


def _refuse_if_busy(ctx: Context, name: str) -> None:
    conn = ctx.ledger.connection()
    hooked = count_hooks(conn, name)
    if hooked:
        raise Conflict(
            f"rig {name!r} has {hooked} issue(s) on a polecat's hook",
            hint="let them finish (or close them and `gt down --polecats`) first",
        )
    states = count_by_state(conn, name)
    waiting = states["queued"] + states["testing"]
    if waiting:
        raise Conflict(
            f"rig {name!r} has {waiting} merge request(s) waiting in its queue",
            hint="let the refinery finish (`gt refinery run`), or `gt mq reject` them first",
        )


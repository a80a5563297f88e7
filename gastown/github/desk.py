"""Where GitHub work is started: `gt github sync` and the Mayor's GitHub loop, one per rig.

A rig without ``[rigs.X.github]`` never gets a client: both ask ``settings_of`` first.
The Mayor's loop keeps one client per rig, so its conditional requests find the ETags of
its previous pass (a quiet repository costs no rate limit). It runs every
``poll_interval``; with a webhook secret configured, GitHub's deliveries at `gt serve`
wake it at once and the poll becomes a safety net (every ``WEBHOOK_SAFETY_POLL_S``
at least), since GitHub never redelivers a missed event by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gastown._internal.log import logger
from gastown.context import Context
from gastown.errors import GastownError, NotFound
from gastown.github import connect, require_settings, settings_of
from gastown.github.sync import Slinger, SyncReport, sync_rig

if TYPE_CHECKING:
    from gastown.config.schema import TownConfig
    from gastown.github.api import Repo

log = logger(__name__)

WEBHOOK_SAFETY_POLL_S = 600.0


def wake_topic(rig: str) -> str:
    """The wake-up file the server touches when GitHub tells it something about ``rig``."""
    return f"github-{rig}"


def rigs_on_github(config: TownConfig) -> list[str]:
    return sorted(rig for rig in config.rigs if settings_of(config, rig) is not None)


def sync_now(ctx: Context, rig: str | None = None, *, slinger: Slinger | None = None) -> list[SyncReport]:
    """`gt github sync [RIG]`: one pass for the rig, or for every rig on GitHub."""
    if rig is not None:
        require_settings(ctx.config, rig)
        rigs = [rig]
    else:
        rigs = rigs_on_github(ctx.config)
        if not rigs:
            raise NotFound("no rig of this town has a [rigs.X.github] table", hint="add one (docs/github.md)")
    reports = []
    for name in rigs:
        cfg = require_settings(ctx.config, name)
        repo = connect(ctx, name)
        try:
            reports.append(sync_rig(ctx, name, repo, cfg, slinger=slinger))
        finally:
            repo.client.close()
    return reports


class GitHubDesk:
    """The Mayor's GitHub loop for one rig (``step`` and ``interval``). A failing pass is
    logged every time and recorded as an event once per distinct failure; the next pass
    tries again."""

    def __init__(self, ctx: Context, rig: str) -> None:
        self.ctx = ctx
        self.rig = rig
        self._repo: Repo | None = None
        self._failing: str | None = None  # the message of the failure last recorded as an event

    def interval(self) -> float:
        cfg = settings_of(self.ctx.config, self.rig) if self.rig in self.ctx.config.rigs else None
        if cfg is None:
            return 30.0  # only to notice a table added to gastown.toml
        return max(cfg.poll_interval, WEBHOOK_SAFETY_POLL_S) if cfg.webhook_secret_env else cfg.poll_interval

    def step(self) -> None:
        cfg = settings_of(self.ctx.config, self.rig) if self.rig in self.ctx.config.rigs else None
        if cfg is None:
            self.close()
            return
        try:
            if self._repo is None or self._repo.full_name != cfg.repo or self._repo.client.api_url != cfg.api_url:
                self.close()
                self._repo = connect(self.ctx, self.rig)
            sync_rig(self.ctx, self.rig, self._repo, cfg)
        except GastownError as exc:  # GitHub down, the token missing or refused: said once, retried each pass
            self._report(exc)
        else:
            self._failing = None

    def _report(self, exc: GastownError) -> None:
        log.warning("github %s: %s", self.rig, exc.message)
        if exc.message == self._failing:
            return
        self._failing = exc.message
        from gastown.ledger.events import record_event

        with self.ctx.ledger.write() as conn:
            record_event(conn, "github", f"GitHub pass failed: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""),
                         now=self.ctx.now(), rig=self.rig)

    def close(self) -> None:
        if self._repo is not None:
            self._repo.client.close()
            self._repo = None

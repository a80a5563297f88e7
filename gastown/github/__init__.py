"""GitHub: labelled issues in, pull requests out, checks and reviews back (docs/github.md).

``connect(ctx, rig)`` is the only place a client is built: from the rig's
``[rigs.X.github]`` table and the token in the variable it names. A rig without that
table never reaches it (callers ask ``settings_of`` first), so it never talks to GitHub.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gastown.errors import GitHubAuthError, NotFound

if TYPE_CHECKING:
    from gastown.config.schema import GitHubConfig, TownConfig
    from gastown.context import Context
    from gastown.github.api import Repo


def settings_of(config: TownConfig, rig: str) -> GitHubConfig | None:
    """The rig's ``[rigs.X.github]`` table, or None (the rig never talks to GitHub)."""
    cfg = config.rigs.get(rig)
    return cfg.github if cfg is not None else None


def require_settings(config: TownConfig, rig: str) -> GitHubConfig:
    if rig not in config.rigs:
        raise NotFound(f"no rig named {rig!r} in this town", hint="list rigs with `gt rig list`")
    found = settings_of(config, rig)
    if found is None:
        raise NotFound(f"rig {rig!r} has no [rigs.{rig}.github] table", hint="add one (docs/github.md)")
    return found


def connect(ctx: Context, rig: str, *, max_retries: int | None = None) -> Repo:
    """A client for ``rig``'s repository. Raises ``GitHubAuthError`` (naming the variable,
    never its value) when the token variable is unset or empty."""
    from gastown.github.api import Repo
    from gastown.github.client import GitHubClient

    cfg = require_settings(ctx.config, rig)
    token = ctx.environ.get(cfg.token_env, "").strip()
    if not token:
        raise GitHubAuthError(f"the GitHub token variable {cfg.token_env} is not set",
                              hint=f"export {cfg.token_env} (a token with the permissions in docs/github.md) "
                                   "in the environment of `gt up` and `gt github sync`")
    client = GitHubClient(token=token, api_url=cfg.api_url) if max_retries is None else \
        GitHubClient(token=token, api_url=cfg.api_url, max_retries=max_retries, timeout=10.0, max_wait=0.0)
    return Repo(client, cfg.repo)

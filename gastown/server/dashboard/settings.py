"""Where the dashboard lives and what it needs, from ``[server]``; pure, no web imports
(``gt dashboard`` uses it without loading Starlette)."""

from __future__ import annotations

from collections.abc import Mapping

from gastown.config.schema import ServerConfig
from gastown.errors import ConfigError

ANY_ADDRESS = ("0.0.0.0", "::", "")


def dashboard_url(config: ServerConfig) -> str:
    """The URL a browser on this machine opens for the dashboard.

    >>> dashboard_url(ServerConfig()), dashboard_url(ServerConfig(host="0.0.0.0", port=9000))
    ('http://127.0.0.1:8470/', 'http://127.0.0.1:9000/')
    >>> dashboard_url(ServerConfig(host="::1", port=80, token_env="T"))
    'http://[::1]:80/'
    """
    host = "127.0.0.1" if config.host in ANY_ADDRESS else config.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}/"


def server_token(config: ServerConfig, environ: Mapping[str, str]) -> str | None:
    """The token every request must carry, read from the variable ``token_env`` names.

    None when no ``token_env`` is set; ``ConfigError`` when it names an unset or empty
    variable (a server that silently ran without its token would be open to all)."""
    if config.token_env is None:
        return None
    value = environ.get(config.token_env, "")
    if not value.strip():
        raise ConfigError(
            f"[server] token_env names {config.token_env}, but that variable is not set",
            hint=f"export {config.token_env}=<a long random value> (e.g. from `openssl rand -hex 32`), "
                 "or remove token_env to serve on loopback only",
        )
    return value

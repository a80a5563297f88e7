"""Serve one town's dashboard on its own, until `gt serve` mounts it:

    python -m gastown.server.dashboard [TOWN]

Listens where ``[server]`` says (host, port), with the token of ``[server] token_env``.
Ctrl-C stops it and ends every open stream.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gastown.errors import GastownError


def main(argv: list[str]) -> int:
    from gastown.server.dashboard.app import create_dashboard_app
    from gastown.server.dashboard.serving import bind, make_server
    from gastown.server.dashboard.settings import server_token
    from gastown.town import find_town

    try:
        town = find_town(Path(argv[0]) if argv else None, os.environ, Path.cwd())
        config = town.config().server
        app = create_dashboard_app(town.root, token=server_token(config, os.environ), host=config.host)
        sock = bind(config.host, config.port)
    except GastownError as exc:
        sys.stderr.write(f"gt: {exc.message}\n" + (f"    {exc.hint}\n" if exc.hint else ""))
        return int(exc.exit_code)
    except OSError as exc:
        sys.stderr.write(f"gt: cannot listen on {config.host}:{config.port}: {exc.strerror}\n")
        return 1
    sys.stderr.write(f"gastown dashboard on http://{config.host}:{sock.getsockname()[1]}/ (Ctrl-C stops it)\n")
    try:
        make_server(app, log_level="info").run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled; stopping is how a server ends, not a failure
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""``GET /healthz``: is the server up and can it read the ledger."""

from __future__ import annotations

import os
from typing import Any

from gastown import __version__
from gastown.server.app import town_server


async def healthz(request: Any) -> Any:
    from anyio import to_thread
    from starlette.responses import JSONResponse

    server = town_server(request)

    def ledger_ok() -> str:
        from gastown.errors import LedgerError
        from gastown.ledger.events import last_event_id

        try:
            last_event_id(server.ctx.ledger.connection())
        except LedgerError as exc:
            return exc.message
        return "ok"

    ledger = await to_thread.run_sync(ledger_ok)
    now = server.ctx.now()
    body = {
        "ok": ledger == "ok", "town": server.config().town.name or server.ctx.town.root.name, "version": __version__,
        "pid": os.getpid(), "uptime_s": round(now - server.started_at, 1), "ledger": ledger,
    }
    return JSONResponse(body, status_code=200 if ledger == "ok" else 503)


def routes() -> list[Any]:
    from starlette.routing import Route

    return [Route("/healthz", healthz, methods=["GET"])]

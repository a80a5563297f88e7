"""The town's HTTP face, run by `gt serve`: an ASGI app (Starlette on uvicorn).

It records and wakes; the Mayor decides and acts. Nothing here runs tmux or a patrol,
so a flood of requests can never stall one; the one git call (a remote agent's `gt done`
fetching its branch from its host, authenticated by the spawn's token) runs in a worker
thread. Imported only by `gt serve` (and
the tests), never on the CLI's start-up path.

- ``app.py``     the app factory: ``create_app(town)`` and the one ``TownServer`` it holds
                 (the town's context, a fresh config, the token gate for non-hook endpoints)
- ``hooks.py``   ``POST /hooks/<trigger>/<token>``: webhook triggers
- ``health.py``  ``GET /healthz``
- ``agent_api.py`` ``/agent/...``: agents on other hosts report back (done, escalate, mail,
                 prime), each request authenticated by its spawn's token
- ``run.py``     binding (refusing a non-loopback address without a token), the run record,
                 uvicorn

Later areas (GitHub events, the dashboard, ``/api/``, remote hosts) are further modules
with a ``routes()`` each, added to ``create_app``.
"""

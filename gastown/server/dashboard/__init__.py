"""The town in a browser: pages, live updates, actions (``app.create_dashboard_app``).

Importing this package costs nothing; Starlette, uvicorn and Jinja2 are imported by
``app``, ``serving`` and the modules they use.
"""

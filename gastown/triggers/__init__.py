"""Triggers, the pure parts: cron schedules with time zones, the request template and its
placeholders, signature checks, and the decisions about a request (accept, refuse,
settle). No I/O here; the server (``gastown/server``), the Mayor's trigger desk
(``roles/trigger_desk.py``) and ``gt trigger`` do the acting.
"""

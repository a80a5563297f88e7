"""What people look at: the town at a glance (`gt status`) and the live feed (`gt feed`).

``status`` gathers a ``TownStatus`` snapshot (ledger reads plus one batched tmux query);
``render`` turns snapshots and events into rich renderables (pure: no printing, no
I/O); ``feed`` runs the live loop and the plain event stream. Only ``render`` and
``feed`` import rich, and only when a command needs them.
"""

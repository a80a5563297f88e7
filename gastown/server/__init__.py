"""The town's HTTP face: the dashboard (``dashboard/``) and its JSON API (``api.py``)."""

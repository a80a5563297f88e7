"""The SQLite ledger: the town's source of truth and its message bus.

``db`` holds connections and transactions, ``migrations`` the schema; one module per
kind of record (``issues``, ``events``, ...) holds its rows and queries.
"""

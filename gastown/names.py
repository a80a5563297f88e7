"""The names users give things (rigs, polecats, triggers, hosts) and issue prefixes.

Standard library only, so the ledger and the command line can check a name without
loading the config's pydantic models.
"""

from __future__ import annotations

import re

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
RESERVED_RIG_NAMES = frozenset({"mayor", "gastown"})

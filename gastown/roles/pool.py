"""Polecat names: a themed pool per rig, never reusing a name while its worktree exists.

Pure choice over what is in use (ledger rows plus directories on disk); the caller
holds the rig's pool lock while choosing and recording, so two slings never pick the
same name.
"""

from __future__ import annotations

import hashlib

THEMES: dict[str, tuple[str, ...]] = {
    "foundry": (
        "anvil", "bolt", "cinder", "dynamo", "ember", "flint", "gauge", "hammer", "ingot", "jolt",
        "kiln", "lathe", "mortar", "nitro", "onyx", "piston", "quench", "rivet", "spark", "torque",
        "umber", "valve", "welder", "xenon", "yoke", "zinc", "axle", "bellows", "crank", "drill",
    ),
    "weather": (
        "aurora", "breeze", "cirrus", "dew", "eddy", "frost", "gale", "haze", "isobar", "jetstream",
        "kelvin", "lull", "monsoon", "nimbus", "ozone", "petrichor", "quasar", "rime", "squall", "tempest",
        "updraft", "vortex", "whirl", "xeric", "yonder", "zephyr", "boreas", "cyclone", "drizzle", "sirocco",
    ),
    "mineral": (
        "agate", "beryl", "cobalt", "diorite", "emerald", "feldspar", "garnet", "hematite", "iolite", "jasper",
        "kyanite", "lapis", "mica", "nickel", "obsidian", "pyrite", "quartz", "ruby", "slate", "topaz",
        "umbra", "vanadium", "wolfram", "xenolith", "yttrium", "zircon", "basalt", "chert", "dolomite", "gneiss",
    ),
}

RESERVED = frozenset({"mayor", "witness", "deacon", "refinery", "polecats", "hub", "hub.git"})


def theme_for(rig: str) -> tuple[str, ...]:
    """A rig's default theme, stable for its name.

    >>> theme_for("app")[:2] == theme_for("app")[:2]
    True
    """
    keys = sorted(THEMES)
    index = int(hashlib.sha256(rig.encode()).hexdigest(), 16) % len(keys)
    return THEMES[keys[index]]


def choose_name(pool: tuple[str, ...] | list[str], in_use: set[str]) -> str:
    """The first pool name not in use, else ``polecat<N>`` with the lowest free N.

    >>> choose_name(("a", "b"), {"a"}), choose_name(("a",), {"a", "polecat1"})
    ('b', 'polecat2')
    """
    for name in pool:
        if name not in in_use and name not in RESERVED:
            return name
    n = 1
    while f"polecat{n}" in in_use:
        n += 1
    return f"polecat{n}"

"""Everything gastown does with git: the runner (``cmd``), rig hubs (``hub``), worktrees."""

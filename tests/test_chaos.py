"""The chaos test: two minutes of a person poking a running town at random (`gt stop`,
`gt restart`, `gt unsling`, `gt issue close`/`reopen`, `gt sling`, `gt down --polecats`/
`gt up`, a gastown.toml broken by a typo and fixed again) while ten demo agents work, some crashing or red on their first try. Afterwards
the town is consistent: no issue ran twice at once, no hook is left without an agent, a
queue entry or a person's attention, no slot is held by a closed issue, no MR merged
twice, every commit on the upstream's first-parent history passes the gate, and no
unmerged commit is lost."""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import create_issue, git, gt_json, ledger_rows, no_overlapping_spawns, retry_until, run_gt, set_config
from tests.test_soak import GATE, red_first_parent_commits

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

TYPO = "\n[[[ a typo\n"
CHAOS_SECONDS = float(os.environ.get("GT_CHAOS_SECONDS", "120"))
WITNESS = {
    "patrol_interval": "0.5s", "spawn_grace": "90s", "stall_after": "20s", "idle_after": "30s",
    "max_nudges": 1, "max_restarts": 3, "stop_timeout": "2s",
}


def body(n: int) -> str:
    think = f"~~~demo\nthink {3 + n % 5}\n~~~\n"
    if n % 4 == 1:
        return think + f"~~~demo\nwrite red-{n}.txt @first\nRED\n~~~\n~~~demo\nwrite red-{n}.txt @fix\nfixed\n~~~"
    if n % 4 == 2:
        return "~~~demo\ncrash @first\n~~~\n" + think + f"~~~demo\nwrite crash-{n}.txt\nok\n~~~"
    return think + f"~~~demo\nwrite plain-{n}.txt\nok\n~~~"


class Person:
    """Types random by-hand commands and keeps what each one answered."""

    def __init__(self, town: Path, ids: list[str], seed: int) -> None:
        self.town = town
        self.ids = ids
        self.rng = random.Random(seed)
        self.log: list[tuple[list[str], int, str]] = []
        self.paused = False
        self.broken = False  # gastown.toml has a typo: acting commands refuse (exit 3)
        self.pending: list[str] | None = None  # kinds of move not made yet

    def gt(self, *args: str) -> Any:
        result = run_gt(*args, cwd=self.town, timeout=180)
        self.log.append((list(args), result.returncode, result.stderr.strip() + (" [broken config]" if self.broken else "")))
        return result

    def edit_config(self, broken: bool) -> bool:
        config = self.town / "gastown.toml"
        text = config.read_text().replace(TYPO, "")
        config.write_text(text + TYPO if broken else text)
        self.broken = broken
        self.log.append((["break" if broken else "fix"], 0, ""))
        return True

    def act(self) -> None:
        # What a person sees (read from the ledger: quicker than `gt polecat list`, same rows).
        hooked = [f"{h['rig']}/{h['polecat']}" for h in ledger_rows(self.town, "SELECT rig, polecat FROM hooks")]
        statuses = {i["id"]: i["status"] for i in ledger_rows(self.town, "SELECT id, status FROM issues")}
        by_status = lambda *wanted: [i for i, s in statuses.items() if s in wanted]  # noqa: E731
        moves = {
            "stop": lambda: hooked and self.gt("stop", self.rng.choice(hooked)),
            "restart": lambda: hooked and self.gt("restart", self.rng.choice(hooked)),
            "unsling": lambda: by_status("hooked", "blocked") and self.gt("unsling", self.rng.choice(by_status("hooked", "blocked"))),
            "close": lambda: by_status("open", "hooked", "blocked", "in_review") and self.gt(
                "issue", "close", self.rng.choice(by_status("open", "hooked", "blocked", "in_review"))),
            "reopen": lambda: by_status("closed", "blocked") and self.gt("issue", "reopen", self.rng.choice(by_status("closed", "blocked"))),
            "sling": lambda: by_status("open") and self.gt("sling", self.rng.choice(by_status("open"))),
            "pause": lambda: self.gt("down", "--polecats", "--timeout", "2"),
            "up": lambda: self.gt("up"),
            "break": lambda: not self.broken and self.edit_config(True),
            "fix": lambda: self.broken and self.edit_config(False),
        }
        weights = {"stop": 3, "restart": 3, "unsling": 2, "close": 2, "reopen": 2, "sling": 4, "pause": 1, "up": 2,
                   "break": 1, "fix": 2}
        if self.pending is None:  # every kind of move at least once, whatever the machine's pace
            self.pending = list(weights)
            self.rng.shuffle(self.pending)
        for name in list(self.pending):
            if moves[name]():  # it could be made now (a reopen needs a closed issue, ...)
                self.pending.remove(name)
                return
        name = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        moves[name]()


def test_two_minutes_of_chaos_by_hand_leave_the_town_consistent(rig_town: Path, upstream: Path, tmp_path: Path,
                                                                 tmux_socket: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seed = int(os.environ.get("GT_CHAOS_SEED", "2026"))
    monkeypatch.setenv("GT_DEMO_THINK", "0.1")
    set_config(rig_town, "witness", WITNESS)
    set_config(rig_town, "town", {"max_polecats": 4})
    set_config(rig_town, "rigs.app", {"agent": "demo", "gates": [GATE], "batch": 2})
    base = git(upstream, "rev-parse", "main")
    ids = [create_issue(rig_town, f"chaos {n}", body(n)) for n in range(10)]
    person = Person(rig_town, ids, seed)
    try:
        run_gt("up", cwd=rig_town, check=True)
        gt_json("sling", *ids, "--no-convoy", cwd=rig_town)
        deadline = time.monotonic() + CHAOS_SECONDS
        while time.monotonic() < deadline:
            person.act()
        # Settle as a person would: the typo fixed, the town up, every stopped agent restarted.
        person.edit_config(False)
        run_gt("up", cwd=rig_town, check=True)
        for polecat in gt_json("polecat", "list", cwd=rig_town):
            if polecat["state"] == "stopped":
                person.gt("restart", f"app/{polecat['name']}")
        retry_until(lambda: not orphan_hooks(rig_town), timeout=120, interval=1, what="every hook to have an agent")
        retry_until(lambda: not closed_but_holding(rig_town), timeout=60, interval=1,
                    what="no closed issue to hold a slot")
        retry_until(lambda: not ledger_rows(rig_town, "SELECT id FROM mrs WHERE state IN ('queued', 'testing')"),
                    timeout=300, interval=2, what="the merge queue to drain")
    finally:
        run_gt("down", "--timeout", "1", cwd=rig_town)

    for args, code, err in person.log:
        assert "Traceback" not in err and "internal error" not in err, (args, err)
        # A command that runs on the last good config says so first, on its own line.
        said = [line for line in err.splitlines() if not line.startswith("warning: ")]
        assert code == 0 or (said and said[0].startswith("gt: ") and code in (4, 6, 7)) or (
            code == 3 and err.endswith("[broken config]") and "invalid TOML" in err), (args, code, err)
    ran = {tuple(a[:2]) if a[0] in ("issue", "down") else (a[0],) for a, _, _ in person.log}
    assert {("stop",), ("restart",), ("sling",), ("issue", "close"), ("issue", "reopen"), ("down", "--polecats"),
            ("break",), ("fix",)} <= ran

    no_overlapping_spawns(rig_town)
    merged = ledger_rows(rig_town, "SELECT id, commit_sha FROM mrs WHERE state = 'merged'")
    events = ledger_rows(rig_town, "SELECT json_extract(data, '$.mr') AS mr FROM events WHERE kind = 'merged'")
    assert sorted(e["mr"] for e in events) == sorted(m["id"] for m in merged), "every MR merged at most once"
    first_parent = git(upstream, "rev-list", "--first-parent", f"{base}..main").splitlines()
    assert len(first_parent) == len(merged), "one first-parent commit per merged MR"
    assert red_first_parent_commits(upstream, tmp_path, since=base) == []
    lost = unmerged_and_unkept(rig_town, upstream)
    assert lost == [], f"commits neither merged nor kept: {lost}"
    archived = [ref for e in ledger_rows(rig_town, "SELECT data FROM events WHERE kind IN ('unsling', 'issue')")
                if e["data"] for ref in json.loads(e["data"]).get("archived", [])]
    hub = rig_town / "app" / "hub.git"
    refs = set(git(hub, "for-each-ref", "--format=%(refname)", "refs/gastown/archive/").splitlines())
    assert set(archived) <= refs, "every archive an unsling or close reported exists"
    tally = Counter(" ".join(a[:2] if a[0] in ("issue", "down") else a[:1]) + f" -> {code}" for a, code, _ in person.log)
    print(f"chaos: seed {seed}, {len(person.log)} commands, {len(merged)} merged, {len(refs)} archive refs;",
          ", ".join(f"{k} x{v}" for k, v in sorted(tally.items())))


def orphan_hooks(town: Path) -> list[dict[str, Any]]:
    """Hooks with no live run, no queued sling, and no person's attention (a blocked issue
    with an open escalation is waiting for a person, on purpose)."""
    return ledger_rows(
        town,
        "SELECT hooks.issue FROM hooks JOIN issues ON issues.id = hooks.issue"
        " WHERE NOT EXISTS (SELECT 1 FROM spawns WHERE spawns.id = hooks.spawn"
        "                   AND spawns.status IN ('starting', 'running', 'done'))"
        " AND NOT EXISTS (SELECT 1 FROM sling_queue WHERE sling_queue.issue = hooks.issue)"
        " AND NOT (issues.status = 'blocked' AND EXISTS (SELECT 1 FROM escalations WHERE escalations.issue = hooks.issue"
        "          AND escalations.acked_at IS NULL AND escalations.resolved_at IS NULL))",
    )


def closed_but_holding(town: Path) -> list[dict[str, Any]]:
    return ledger_rows(
        town,
        "SELECT issues.id FROM issues WHERE issues.status = 'closed' AND (EXISTS (SELECT 1 FROM hooks"
        " WHERE hooks.issue = issues.id) OR EXISTS (SELECT 1 FROM spawns WHERE spawns.issue = issues.id"
        " AND spawns.status IN ('starting', 'running')))",
    )


def unmerged_and_unkept(town: Path, upstream: Path) -> list[str]:
    """Every commit an agent submitted or that was archived must be on main, or kept under
    refs/gastown/ (MR pins, archives) or a live branch in the hub."""
    hub = town / "app" / "hub.git"
    git(hub, "fetch", "-q", "origin")
    shas = {row["commit_sha"] for row in ledger_rows(town, "SELECT commit_sha FROM mrs")}
    # Commits the demo agents made, as they said so in their logs ("demo: committed 1a2b3c4 · ...").
    for log in (town / ".gastown" / "logs" / "app").rglob("*.log"):
        for short in re.findall(r"demo: committed ([0-9a-f]{7,})", log.read_text(errors="replace")):
            shas.add(git(hub, "rev-parse", f"{short}^{{commit}}"))
    lost = []
    for sha in sorted(shas):
        kept = git(hub, "for-each-ref", "--contains", sha, "--format=%(refname)",
                   "refs/gastown/", "refs/heads/", "refs/remotes/origin/main")
        if not kept.strip():
            lost.append(sha)
    return lost

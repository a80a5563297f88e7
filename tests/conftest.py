"""Fixtures: an isolated environment for every test, temp towns and upstreams, and an
isolated tmux server on a unique socket that is always killed afterwards.

The suite runs in parallel (pytest-xdist, the README's command): every test owns its
HOME, git identity, tmux socket and temp dirs, so tests never meet. This file also keeps
the run cheap and orderly:

- gastown's bytecode is compiled once, by the controlling process before any worker
  starts: every test starts `gt` processes, and where ``PYTHONDONTWRITEBYTECODE`` is set
  (CI images often set it) each would otherwise compile every module again, about a
  third of its start-up;
- a run directory shared by all workers (``run_dir``) holds what they coordinate through
  (the background install of the real CLIs: ``tests/realcli/install.py``);
- the longest tests are scheduled first and the real-CLI tests last (``LONG_TESTS``);
- towns are built once per worker and copied for each test (``_copy_of``).
"""

from __future__ import annotations

import compileall
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import RUN_DIR, kill_tmux_server, make_upstream, run_gt, set_config
from tests.sshd import ssh_host  # noqa: F401 - the SSH host fixture, for every test module

# Helper programs the tests run as agents; not test modules (importing them would run them).
collect_ignore = ["agents"]

REPO = Path(__file__).resolve().parents[1]
AGENT_VARS = ("GT_TOWN", "GT_RIG", "GT_POLECAT", "GT_ISSUE", "GT_SPAWN", "GT_ROLE", "TMUX", "TMUX_PANE", "GT_DEBUG")
# The invoking shell's terminal and directories must not shape what a test sees: xdist
# exports COLUMNS=80 to its workers (rich would cut every table at 80 columns), and XDG
# base dirs would point the CLIs past the private HOME at the user's own files.
SHELL_VARS = ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "CLICOLOR_FORCE",
              "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")

# Seconds the tests that take long took in a parallel run on the reference machine (2
# cores, -n 4); everything else counts as short. Only the order matters: the longest start
# first, so the run does not end with one worker alone on a long test. A renamed test
# merely loses its place in the queue.
LONG_TESTS: dict[str, float] = {
    # Measured 2026-11-30 under a loaded run: two towns' worth of hosts (issue 16, phase B).
    "tests/test_hosts_e2e.py::test_local_and_remote_polecats_land_through_one_refinery": 45,
    "tests/test_hosts_e2e.py::test_a_host_that_vanishes_mid_run_loses_nothing_and_runs_nothing_twice": 35,
    "tests/test_hosts_e2e.py::test_unslinging_a_remote_polecat_brings_its_work_back_and_removing_it_clears_the_host": 25,
    # Measured 2026-11-30 (-n 4, 1381 tests): the end-to-end runs added by issues 11-16.
    "tests/test_chaos.py::test_two_minutes_of_chaos_by_hand_leave_the_town_consistent": 154,
    "tests/test_soak.py::test_sixty_issues_merge_exactly_once_with_nobody_typing": 125,
    "tests/test_dashboard_browser.py::test_the_dashboard_shows_a_live_town_and_talks_to_its_agents": 101,
    "tests/test_triggers_e2e.py::test_a_labeled_github_issue_is_slung_to_a_demo_agent_and_merged": 73,
    "tests/test_triggers_e2e.py::test_gt_up_starts_the_server_the_deacon_restarts_it_and_gt_down_stops_it": 58,
    "tests/test_smaller_wrongs.py::test_a_fix_cycle_queued_at_capacity_starts_even_if_its_polecat_was_taken": 56,
    "tests/test_down_polecats.py::test_sling_then_down_polecats_in_a_loop_keeps_the_mayor": 47,
    "tests/test_triggers_e2e.py::test_a_hostile_payload_reaches_the_prompt_verbatim_inside_the_fence_and_never_a_shell": 44,
    "tests/test_by_hand.py::test_reopening_a_blocked_issue_gives_it_a_fresh_allowance": 29,
    "tests/test_by_hand.py::test_closing_a_blocked_issue_releases_its_hook": 29,
    "tests/test_patrols.py::test_twelve_issues_never_more_than_three_agents": 90,
    "tests/test_convoys.py::test_a_convoy_of_four_lands_by_itself_when_the_last_issue_closes": 65,
    "tests/test_costs.py::test_budget_reached_mid_run_stops_spawns_until_raised": 60,
    "tests/test_mq_cli.py::test_mq_list_show_retry_reject": 55,
    "tests/test_docs.py::test_getting_started_walkthrough_runs_as_written": 55,
    "tests/test_patrols.py::test_gt_down_keeps_hooks_and_gt_up_resumes": 45,
    "tests/test_patrols.py::test_mayor_killed_or_tmux_killed_then_gt_up_loses_and_doubles_nothing": 45,
    "tests/test_patrols.py::test_killed_agent_is_restarted_in_place_and_keeps_its_commits": 40,
    "tests/test_patrols.py::test_hanging_agent_is_nudged_restarted_then_blocked": 40,
    "tests/test_costs.py::test_costs_equal_what_the_agent_recorded": 35,
    "tests/test_demo_cmd.py::test_gt_demo_merges_everything_and_cleans_up": 35,
    "tests/test_status.py::test_gt_status_json_shows_agents_queue_counts_and_escalations": 32,
    "tests/test_sling.py::test_twenty_concurrent_nudges_all_arrive_intact": 30,
    "tests/test_mq_cli.py::test_refinery_status_and_release": 28,
    "tests/test_convoys.py::test_sling_of_several_issues_makes_one_convoy": 28,
    "tests/test_patrols.py::test_rate_limit_holds_the_runtime_and_work_resumes_by_itself": 28,
    "tests/test_demo_cmd.py::test_gt_demo_keep_leaves_a_town_to_look_around": 25,
    "tests/test_sling.py::test_sling_opens_window_worktree_and_branch": 25,
    "tests/test_sling.py::test_three_issues_three_agents_three_mrs_then_reuse": 25,
    "tests/test_mq_cli.py::test_mq_errors_are_one_sentence_with_a_hint": 20,
    "tests/test_mail.py::test_mail_survives_the_agents_death_and_the_witness_announces_it_to_the_next_one": 20,
    "tests/test_convoys.py::test_show_says_what_blocks_each_issue": 20,
    "tests/test_feed.py::test_gt_feed_plain_prints_one_line_per_event_and_problems_filters": 18,
    "tests/test_patrols.py::test_second_gt_up_reports_the_running_mayor": 16,
    "tests/test_sling.py::test_failed_sling_leaves_nothing_behind": 16,
    "tests/test_issues_cli.py::test_concurrent_writers_lose_and_duplicate_nothing": 15,
    # The real-CLI tests (run last), scaled by how slow each CLI is (REALCLI_PACE).
    "tests/realcli/test_sling.py::test_sling_to_merge_request": 90,
}
REALCLI_PACE = {"opencode": 2.0, "aider": 1.6, "gemini": 1.6, "copilot": 1.0, "claude": 1.0, "codex": 0.6}
MODE_PACE = {"tui": 1.3, "headless": 1.0}


@pytest.hookimpl(tryfirst=True)  # before tests/realcli/conftest.py reads the run dir
def pytest_configure(config: pytest.Config) -> None:
    """Controller (or a plain run): compile gastown, open the shared run directory."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller prepared the run
        config.stash[RUN_DIR] = Path(config.workerinput["gt_run_dir"])
        return
    compileall.compile_dir(str(REPO / "gastown"), quiet=1)
    run_dir = Path(tempfile.mkdtemp(prefix="gt-test-run-"))
    config.stash[RUN_DIR] = run_dir
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_HandOverRunDir(run_dir), "gastown-run-dir")


class _HandOverRunDir:
    """Gives every xdist worker the controller's run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def pytest_configure_node(self, node: object) -> None:
        node.workerinput["gt_run_dir"] = str(self.run_dir)  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Controller: stop a background install still running (the run is over), drop the run dir."""
    if hasattr(config, "workerinput") or RUN_DIR not in config.stash:
        return
    from tests.realcli.install import stop_background

    run_dir = config.stash[RUN_DIR]
    stop_background(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long tests first, then the real-CLI tests (their CLIs install in the background
    meanwhile), then the rest, longest first: the run ends on short tests, so no worker is
    left alone on a long one. Real-CLI tests alternate TUI and headless, so that the TUIs
    (at most ``TUI_AT_ONCE`` at a time) do not keep workers waiting for a slot."""
    position = {id(item): n for n, item in enumerate(items)}
    realcli = [item for item in items if item.get_closest_marker("realcli") is not None]
    realcli.sort(key=lambda item: (-expected_seconds(item), position[id(item)]))
    tui = [item for item in realcli if _mode(item) == "tui"]
    others = [item for item in realcli if _mode(item) != "tui"]
    turn = {id(item): n for n, item in enumerate([*_alternate(tui, others)])}

    def key(item: pytest.Item) -> tuple[int, float, int]:
        if id(item) in turn:
            return (1, 0.0, turn[id(item)])
        seconds = expected_seconds(item)
        return (0 if seconds >= LONG_FIRST else 2, -seconds, position[id(item)])

    items.sort(key=key)


LONG_FIRST = 15.0  # seconds: tests expected to take this long run before the real-CLI ones


def _mode(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("mode") if callspec is not None else None


def _alternate(first: list[pytest.Item], second: list[pytest.Item]) -> Iterator[pytest.Item]:
    for n in range(max(len(first), len(second))):
        yield from (group[n] for group in (first, second) if n < len(group))


def expected_seconds(item: pytest.Item) -> float:
    """A rough duration for scheduling: LONG_TESTS, else what the markers suggest."""
    base = item.nodeid.split("[", 1)[0]
    params = getattr(item, "callspec", None)
    params = params.params if params is not None else {}
    if base in LONG_TESTS:
        return LONG_TESTS[base] * REALCLI_PACE.get(params.get("cli"), 1.0) * MODE_PACE.get(params.get("mode"), 1.0)
    if item.get_closest_marker("slow"):
        return 10.0
    return 3.0 if item.get_closest_marker("tmux") else 0.0


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test gets its own HOME, git identity and tmux socket; nothing touches the user's.

    Yields the tmux socket name; whatever server a test started on it is killed afterwards.
    """
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Gastown Test\n\temail = test@gastown.invalid\n"
        "[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n"
        "[advice]\n\tdetachedHead = false\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in (*AGENT_VARS, *SHELL_VARS):
        monkeypatch.delenv(var, raising=False)
    socket = f"gt-test-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("GT_TMUX_SOCKET", socket)
    try:
        yield socket
    finally:
        kill_tmux_server(socket)


@pytest.fixture
def tmux_socket(isolated_env: str) -> str:
    """The test's own tmux socket name (a server on it is killed after the test)."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    return isolated_env


@pytest.fixture
def upstream(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare upstream repository with one commit on main."""
    return _copy_of("up", tmp_path, tmp_path_factory) / "upstream.git"


@pytest.fixture
def town(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh town with no rigs."""
    return _copy_of("bare/town", tmp_path, tmp_path_factory)


@pytest.fixture
def rig_town(tmp_path: Path, upstream: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A town with one rig, ``app``, cloned from ``upstream``."""
    return _copy_of("rig/town", tmp_path, tmp_path_factory)


# Towns are made once per worker with the real `gt` (init; rig add) and copied for each
# test: the same files, without two `gt` processes per test (~1 s of CPU each time).
_TEMPLATES: dict[str, Path] = {}
# Files of a copy that name the template's directory: rewritten to name the copy's.
_REWRITE = ("gastown.toml", "app/hub.git/config", "app/hub.git/FETCH_HEAD")


def _copy_of(kind: str, tmp_path: Path, factory: pytest.TempPathFactory) -> Path:
    """Copy template ``kind`` ("up", "bare/town" or "rig/town") to ``tmp_path/up`` or ``tmp_path/town``.

    A rig town's upstream is ``tmp_path/up`` (the ``upstream`` fixture copies it there).
    Fails if the copy still names the template anywhere: gastown stored an absolute path
    this function does not know how to move yet (add its file to ``_REWRITE``).
    """
    root = _templates(factory)
    source = root / kind
    target = tmp_path / Path(kind).name
    shutil.copytree(source, target, symlinks=True)
    old, new = str(root / "up").encode(), str(tmp_path / "up").encode()
    for rel in _REWRITE:
        path = target / rel
        if path.is_file():
            path.write_bytes(path.read_bytes().replace(old, new))
    # The settings cache names the template's paths: validate the copy's gastown.toml here
    # (pydantic is already loaded in this process) so its first `gt` reads the cache, as a
    # town's commands do after `gt init`.
    config = target / "gastown.toml"
    if config.is_file():
        from gastown.config.load import load_config

        load_config(config, cache_path=target / ".gastown" / "run" / "config.json")
    stray = [str(p.relative_to(target)) for p in target.rglob("*")
             if p.is_file() and "objects" not in p.parts and str(root).encode() in p.read_bytes()]
    assert not stray, f"the {kind} template's path is still in {stray}: rewrite it in tests/conftest.py"
    return target


def _templates(factory: pytest.TempPathFactory) -> Path:
    if "root" not in _TEMPLATES:
        root = factory.mktemp("templates")
        make_upstream(root / "up")
        for kind in ("bare", "rig"):
            run_gt("init", str(root / kind / "town"), check=True)
            # Parallel towns would all bind port 8470; the server's own tests turn it on.
            set_config(root / kind / "town", "server", {"enabled": False})
        run_gt("rig", "add", "app", str(root / "up" / "upstream.git"), cwd=root / "rig" / "town", check=True)
        _TEMPLATES["root"] = root
    return _TEMPLATES["root"]

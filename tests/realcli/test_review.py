"""The review gate with real agent CLIs: `gt review run` in a town whose rig reviews with
``claude -p`` or ``codex exec`` (headless, through gastown's launch chokepoint), against
the fake model servers scripted to answer with a findings document.

Proves, per CLI: the prompt (with the MR's diff) reaches the model; the document comes
back through the CLI's stdout and is parsed; a finding outside the diff is dropped and
counted; gastown's verdict comes from the severities; the reviewer's tokens are in
`gt costs` under the role ``review``, token for token what the fake reported; and the
user's real home is untouched.

Run: ``pytest tests/realcli/test_review.py`` (``GT_REALCLI=claude`` selects one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fakes import FAKES, Script
from tests.helpers import gt_json, set_config
from tests.realcli.harness import API_KEY, API_KEY_ENV, REAL_HOME_FILES, make_real_home, tree_digest, usage_for
from tests.realcli.install import ensure_cli
from tests.refinery_support import open_ctx, submit

pytestmark = [pytest.mark.realcli, pytest.mark.slow]

PROVIDER = {"claude": "anthropic", "codex": "openai"}
DOCUMENT = {
    "verdict": "do_not_merge",
    "summary": "eval on user input.",
    "praise": "Short.",
    "findings": [
        {"file": "calc.py", "start_line": 2, "end_line": 2, "severity": "critical", "category": "security",
         "title": "eval on input", "explanation": "Runs whatever the caller sends.",
         "fix": "Parse the numbers and compute explicitly."},
        {"file": "README.md", "start_line": 400, "end_line": 401, "severity": "critical", "category": "bugs",
         "title": "an invented reference", "explanation": "not in the diff", "fix": "-"},
    ],
}


@pytest.mark.parametrize("cli", ["claude", "codex"])
def test_gt_review_run_with_a_real_cli(cli: str, rig_town: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = ensure_cli(cli)
    town = rig_town
    real_home = make_real_home(tmp_path / "realhome")
    before = tree_digest(real_home)
    monkeypatch.setenv("HOME", str(real_home))
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    monkeypatch.setenv("PATH", f"{binary.parent}:{os.environ['PATH']}")
    answer = "I reviewed the change.\n\n```json\n" + json.dumps(DOCUMENT, indent=2) + "\n```\n"
    fake = FAKES[cli](Script.reply(answer, usage=usage_for(cli))).start()
    try:
        set_config(town, "rigs.app.review", {"agent": cli, "style": "roast"})
        set_config(town, f"town.model.{PROVIDER[cli]}",
                   {"base_url": fake.base_url, "api_key_env": API_KEY_ENV, "model": fake.model})
        mr = submit(open_ctx(town), {"calc.py": "def calc(expr):\n    return eval(expr)\n"})

        review = gt_json("review", "run", mr.id, cwd=town)
    finally:
        fake.stop()
    log = Path(review["log"]).read_text() if review.get("log") else ""
    assert review["state"] == "done", f"{review['error']}\n{log[-3000:]}"
    assert review["model_verdict"] == "do_not_merge" and review["verdict"] == "do_not_merge"
    assert [(f["file"], f["start_line"], f["severity"], f["blocking"]) for f in review["findings"]] == [
        ("calc.py", 2, "critical", True)]
    assert review["dropped"] == 1 and review["style"] == "roast" and review["runs"] == 1
    asked = [r for r in fake.log if r.kind == "final"]
    assert asked and "return eval(expr)" in json.dumps(asked[0].body), "the diff reached the model"
    assert "Style: roast." in json.dumps(asked[0].body)

    want = fake.usage_of("tool", "final")
    costs = gt_json("costs", "--by", "role", cwd=town)
    [row] = [r for r in costs["rows"] if r["key"] == "review"]
    assert {k: row[k] for k in ("input", "output", "cache_read", "cache_write")} == {
        "input": want.input, "output": want.output, "cache_read": want.cache_read, "cache_write": want.cache_write}
    assert review["tokens"]["input"] == want.input and row["spawns"] == 1

    assert tree_digest(real_home) == before
    assert (real_home / "SENTINEL").read_text() == REAL_HOME_FILES["SENTINEL"]
    headers = " ".join(str(r.headers) for r in fake.log if r.kind)
    assert API_KEY in headers and "real-user" not in headers
    assert not (town / ".gastown" / "homes" / review["id"]).exists(), "the reviewer's home is removed"
    mq = gt_json("mq", "show", mr.id, cwd=town)
    assert mq["state"] == "changes_requested" and mq["review"]["blocking"] == 1

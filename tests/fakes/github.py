"""A fake GitHub for end-to-end runs: the REST API gastown uses, on 127.0.0.1, port 0.

One repository (``owner/name``) whose git side is a real bare repository (the rig's
upstream: every push gastown makes is real git, and a merge here moves the bare repo's
branch with real commits). Issues, labels, comments, pull requests (create, update,
merge), reviews and review comments, check runs and commit statuses are kept in memory.

What tests use:

- ``calls``: every request as ``Call(method, path, query, status, etag_sent)``;
  ``count(method, path_re)`` counts them;
- ``add_issue``, ``add_check_run``, ``add_review``: what people and CI do on GitHub;
- ``ci``: a function called with a PR each time its head changes, returning check runs
  to report (``[("ci", "success", "summary", "log text")]``) — CI on the fake;
- ``rate_limit_next(n, retry_after)``: the next ``n`` requests get a secondary rate
  limit (403 with ``Retry-After``);
- ``deliver(url, secret, event, payload)``: a webhook delivery signed like GitHub's.

Requests must carry ``Authorization: Bearer <token>``; ETags are honoured (304 on a match).
Lists paginate by ``per_page``/``page`` with a ``Link`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.fakes.base import serve_on_loopback

CheckSpec = tuple[str, str, str, str]  # name, conclusion, summary, log text


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    status: int
    etag_sent: str | None
    body: Any = None


@dataclass
class _Repo:
    full_name: str
    bare: Path
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    review_comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    next_number: int = 1
    next_id: int = 1000


class FakeGitHub:
    """The fake server. A context manager; ``api_url`` is what ``[rigs.X.github] api_url`` takes."""

    def __init__(self, repo: str, bare: Path, *, token: str) -> None:
        self.repo = _Repo(repo, bare)
        self.token = token
        self.calls: list[Call] = []
        self.ci: Callable[[dict[str, Any]], list[CheckSpec]] | None = None
        self._rate_limited = 0
        self._retry_after = 1
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

            def do_PUT(self) -> None:
                fake._handle(self, "PUT")

            def do_DELETE(self) -> None:
                fake._handle(self, "DELETE")

        self._server, self._thread = serve_on_loopback(Handler, name="fake-github")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- what tests do -------------------------------------------------------------------

    def add_issue(self, title: str, body: str = "", labels: tuple[str, ...] = ("gastown",)) -> dict[str, Any]:
        with self._lock:
            number = self._number()
            issue = {
                "id": self._id(), "number": number, "title": title, "body": body, "state": "open",
                "labels": [{"name": name} for name in labels], "user": {"login": "octocat"},
                "html_url": f"https://github.example/{self.repo.full_name}/issues/{number}",
                "updated_at": _stamp(),
            }
            self.repo.issues[number] = issue
            return issue

    def edit_issue(self, number: int, **changes: Any) -> None:
        with self._lock:
            self.repo.issues[number].update(changes, updated_at=_stamp())

    def add_check_run(self, sha: str, name: str, conclusion: str | None, summary: str = "", text: str = "") -> dict[str, Any]:
        with self._lock:
            run = {
                "id": self._id(), "name": name, "head_sha": sha,
                "status": "completed" if conclusion else "in_progress", "conclusion": conclusion,
                "output": {"title": f"{name}: {conclusion or 'running'}", "summary": summary, "text": text},
                "html_url": f"https://github.example/{self.repo.full_name}/runs/{self.repo.next_id}",
                "details_url": None,
            }
            self.repo.check_runs.setdefault(sha, []).append(run)
            return run

    def add_review(self, pr: int, state: str, body: str = "",
                   comments: tuple[tuple[str, int, str], ...] = ()) -> dict[str, Any]:
        """A person's review: ``state`` APPROVED, CHANGES_REQUESTED or COMMENTED, with line comments."""
        with self._lock:
            head = self.repo.pulls[pr]["head"]["sha"]
            review = {"id": self._id(), "state": state, "body": body, "commit_id": head,
                      "user": {"login": "reviewer"}, "submitted_at": _stamp()}
            self.repo.reviews.setdefault(pr, []).append(review)
            for path, line, text in comments:
                self.repo.review_comments.setdefault(pr, []).append({
                    "id": self._id(), "pull_request_review_id": review["id"], "path": path, "line": line,
                    "body": text, "commit_id": head, "user": {"login": "reviewer"}})
            return review

    def rate_limit_next(self, count: int, *, retry_after: int = 1) -> None:
        with self._lock:
            self._rate_limited, self._retry_after = count, retry_after

    def count(self, method: str, path_re: str) -> int:
        with self._lock:
            return sum(1 for c in self.calls if c.method == method and re.fullmatch(path_re, c.path))

    def pulls(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(p) for p in self.repo.pulls.values()]

    def comments_on(self, number: int) -> list[str]:
        with self._lock:
            return [c["body"] for c in self.repo.comments.get(number, [])]

    def review_comments_on(self, pr: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.repo.review_comments.get(pr, []))

    def issue(self, number: int) -> dict[str, Any]:
        with self._lock:
            return dict(self.repo.issues[number])

    def deliver(self, url: str, secret: str, event: str, payload: dict[str, Any]) -> httpx.Response:
        """POST one webhook delivery the way GitHub signs it."""
        body = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
                   "X-GitHub-Hook-ID": "1", "X-Hub-Signature-256": signature, "User-Agent": "GitHub-Hookshot/fake"}
        return httpx.post(url, content=body, headers=headers, timeout=10)

    # -- the server ----------------------------------------------------------------------

    def _number(self) -> int:
        number = self.repo.next_number
        self.repo.next_number += 1
        return number

    def _id(self) -> int:
        self.repo.next_id += 1
        return self.repo.next_id

    def _handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(req.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        etag_sent = req.headers.get("If-None-Match")
        with self._lock:
            status, data, headers = self._answer(req, method, split.path, query, body)
            payload = b"" if data is None else json.dumps(data).encode()
            if status == 200 and method == "GET":
                etag = '"' + hashlib.sha1(payload).hexdigest() + '"'
                headers["ETag"] = etag
                if etag_sent == etag:
                    status, payload = 304, b""
            self.calls.append(Call(method, split.path, query, status, etag_sent, body))
        req.send_response(status)
        for key, value in headers.items():
            req.send_header(key, value)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)

    def _answer(self, req: BaseHTTPRequestHandler, method: str, path: str, query: dict[str, str],
                body: Any) -> tuple[int, Any, dict[str, str]]:
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}, {}
        if self._rate_limited > 0:
            self._rate_limited -= 1
            return 403, {"message": "You have exceeded a secondary rate limit."}, {"Retry-After": str(self._retry_after)}
        prefix = f"/repos/{self.repo.full_name}"
        if path != prefix and not path.startswith(prefix + "/"):
            return 404, {"message": "Not Found"}, {}
        rest = path[len(prefix):]
        for pattern, verb, handler in self._routes():
            match = re.fullmatch(pattern, rest)
            if match and verb == method:
                status, data = handler(*match.groups(), query=query, body=body or {})
                headers: dict[str, str] = {"X-RateLimit-Remaining": "4999", "X-RateLimit-Reset": "0"}
                if isinstance(data, list) and method == "GET":
                    data, link = self._page(path, query, data)
                    if link:
                        headers["Link"] = link
                return status, data, headers
        return 404, {"message": "Not Found"}, {}

    def _page(self, path: str, query: dict[str, str], items: list[Any]) -> tuple[list[Any], str | None]:
        per_page, page = int(query.get("per_page", 30)), int(query.get("page", 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        if page * per_page >= len(items):
            return chunk, None
        rest = {**query, "page": str(page + 1), "per_page": str(per_page)}
        url = f"{self.api_url}{path}?" + "&".join(f"{k}={v}" for k, v in rest.items())
        return chunk, f'<{url}>; rel="next"'

    def _routes(self) -> list[tuple[str, str, Callable[..., tuple[int, Any]]]]:
        return [
            (r"", "GET", lambda **_: (200, {"full_name": self.repo.full_name, "default_branch": "main",
                                             "permissions": {"pull": True, "push": True}})),
            (r"/issues", "GET", self._list_issues),
            (r"/issues/(\d+)", "GET", self._get_issue),
            (r"/issues/(\d+)", "PATCH", self._patch_issue),
            (r"/issues/(\d+)/comments", "GET", lambda n, **_: (200, self.repo.comments.get(int(n), []))),
            (r"/issues/(\d+)/comments", "POST", self._post_comment),
            (r"/pulls", "GET", self._list_pulls),
            (r"/pulls", "POST", self._create_pull),
            (r"/pulls/(\d+)", "GET", lambda n, **_: self._pull_or_404(int(n))),
            (r"/pulls/(\d+)", "PATCH", self._patch_pull),
            (r"/pulls/(\d+)/merge", "PUT", self._merge_pull),
            (r"/pulls/(\d+)/reviews", "GET", lambda n, **_: (200, self.repo.reviews.get(int(n), []))),
            (r"/pulls/(\d+)/reviews/(\d+)/comments", "GET", self._review_comments),
            (r"/pulls/(\d+)/comments", "GET", lambda n, **_: (200, self.repo.review_comments.get(int(n), []))),
            (r"/pulls/(\d+)/comments", "POST", self._post_review_comment),
            (r"/commits/([^/]+)/check-runs", "GET", self._check_runs),
            (r"/commits/([^/]+)/check-suites", "GET", self._check_suites),
            (r"/commits/([^/]+)/status", "GET", self._combined_status),
            (r"/statuses/([0-9a-f]+)", "POST", self._post_status),
        ]

    def _list_issues(self, *, query: dict[str, str], body: Any) -> tuple[int, Any]:
        state, labels = query.get("state", "open"), [x for x in query.get("labels", "").split(",") if x]
        items = []
        for issue in self.repo.issues.values():
            names = {label["name"] for label in issue["labels"]}
            if (state == "all" or issue["state"] == state) and all(x in names for x in labels):
                items.append(issue)
        return 200, items

    def _get_issue(self, number: str, **_: Any) -> tuple[int, Any]:
        issue = self.repo.issues.get(int(number))
        return (200, issue) if issue else (404, {"message": "Not Found"})

    def _patch_issue(self, number: str, *, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        issue = self.repo.issues.get(int(number))
        if issue is None:
            return 404, {"message": "Not Found"}
        for key in ("title", "body", "state", "state_reason"):
            if key in body:
                issue[key] = body[key]
        issue["updated_at"] = _stamp()
        return 200, issue

    def _post_comment(self, number: str, *, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        if int(number) not in self.repo.issues:
            return 404, {"message": "Not Found"}
        comment = {"id": self._id(), "body": body.get("body", ""), "user": {"login": "gastown"}}
        self.repo.comments.setdefault(int(number), []).append(comment)
        return 201, comment

    def _list_pulls(self, *, query: dict[str, str], **_: Any) -> tuple[int, Any]:
        state, head = query.get("state", "open"), query.get("head")
        owner = self.repo.full_name.split("/")[0]
        items = [p for p in self.repo.pulls.values()
                 if (state == "all" or p["state"] == state) and (head is None or f"{owner}:{p['head']['ref']}" == head)]
        return 200, items

    def _create_pull(self, *, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        head, base = body.get("head", ""), body.get("base", "")
        sha = self._git("rev-parse", f"refs/heads/{head}")
        if sha is None:
            return 422, {"message": "Validation Failed", "errors": [{"field": "head", "code": "invalid"}]}
        if any(p["head"]["ref"] == head and p["state"] == "open" for p in self.repo.pulls.values()):
            return 422, {"message": "Validation Failed", "errors": [{"message": f"A pull request already exists for {head}."}]}
        number = self._number()
        pull = {
            "id": self._id(), "number": number, "node_id": f"PR_{number}", "title": body.get("title", ""),
            "body": body.get("body", ""), "state": "open", "merged": False, "merge_commit_sha": None,
            "draft": bool(body.get("draft", False)), "head": {"ref": head, "sha": sha}, "base": {"ref": base},
            "html_url": f"https://github.example/{self.repo.full_name}/pull/{number}", "mergeable": True,
        }
        self.repo.pulls[number] = pull
        self.repo.issues[number] = {"id": pull["id"], "number": number, "title": pull["title"], "body": pull["body"],
                                    "state": "open", "labels": [], "pull_request": {"url": pull["html_url"]},
                                    "html_url": pull["html_url"], "user": {"login": "gastown"}, "updated_at": _stamp()}
        self._run_ci(pull)
        return 201, pull

    def _pull_or_404(self, number: int) -> tuple[int, Any]:
        pull = self.repo.pulls.get(number)
        if pull is None:
            return 404, {"message": "Not Found"}
        self._refresh_head(pull)
        return 200, pull

    def _refresh_head(self, pull: dict[str, Any]) -> None:
        """A push to the PR's branch moves its head (and runs CI), as on GitHub."""
        if pull["state"] != "open":
            return
        sha = self._git("rev-parse", f"refs/heads/{pull['head']['ref']}")
        if sha and sha != pull["head"]["sha"]:
            pull["head"]["sha"] = sha
            self._run_ci(pull)

    def _run_ci(self, pull: dict[str, Any]) -> None:
        if self.ci is None:
            return
        for name, conclusion, summary, text in self.ci(pull):
            self.add_check_run(pull["head"]["sha"], name, conclusion, summary, text)

    def _patch_pull(self, number: str, *, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        pull = self.repo.pulls.get(int(number))
        if pull is None:
            return 404, {"message": "Not Found"}
        for key in ("title", "body", "state"):
            if key in body:
                pull[key] = body[key]
        self._refresh_head(pull)
        return 200, pull

    def _merge_pull(self, number: str, *, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        pull = self.repo.pulls.get(int(number))
        if pull is None:
            return 404, {"message": "Not Found"}
        self._refresh_head(pull)
        if pull["state"] != "open":
            return 405, {"message": "Pull Request is not mergeable"}
        if body.get("sha") and body["sha"] != pull["head"]["sha"]:
            return 409, {"message": "Head branch was modified. Review and try the merge again."}
        sha = self.merge_in_git(pull, body.get("merge_method", "merge"))
        if sha is None:
            return 405, {"message": "Pull Request is not mergeable"}
        pull.update(state="closed", merged=True, merge_commit_sha=sha)
        self.repo.issues[int(number)]["state"] = "closed"
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}

    def merge_in_git(self, pull: dict[str, Any], method: str) -> str | None:
        """Land the PR on its base in the bare repo, with real commits (squash or merge)."""
        base_ref, head = f"refs/heads/{pull['base']['ref']}", pull["head"]["sha"]
        base = self._git("rev-parse", base_ref)
        if base is None:
            return None
        tree = self._git("merge-tree", "--write-tree", base, head)
        if tree is None:
            return None
        tree = tree.splitlines()[0]
        message = f"{pull['title']} (#{pull['number']})"
        parents = ["-p", base] if method in ("squash", "rebase") else ["-p", base, "-p", head]
        sha = self._git("-c", "user.name=GitHub", "-c", "user.email=noreply@github.example", "commit-tree", tree,
                        *parents, "-m", message)
        if sha is None or self._git("update-ref", base_ref, sha, base) is None:
            return None
        return sha

    def _review_comments(self, number: str, review: str, **_: Any) -> tuple[int, Any]:
        return 200, [c for c in self.repo.review_comments.get(int(number), [])
                     if c["pull_request_review_id"] == int(review)]

    def _post_review_comment(self, number: str, *, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        pull = self.repo.pulls.get(int(number))
        if pull is None:
            return 404, {"message": "Not Found"}
        if not body.get("path") or not isinstance(body.get("line"), int) or not body.get("commit_id"):
            return 422, {"message": "Validation Failed", "errors": [{"message": "path, line and commit_id are required"}]}
        comment = {"id": self._id(), "pull_request_review_id": None, "path": body["path"], "line": body["line"],
                   "side": body.get("side", "RIGHT"), "body": body.get("body", ""), "commit_id": body["commit_id"],
                   "user": {"login": "gastown"}}
        self.repo.review_comments.setdefault(int(number), []).append(comment)
        return 201, comment

    def _check_runs(self, ref: str, **_: Any) -> tuple[int, Any]:
        runs = self.repo.check_runs.get(ref, [])
        return 200, {"total_count": len(runs), "check_runs": runs}

    def _check_suites(self, ref: str, **_: Any) -> tuple[int, Any]:
        """One suite holding every check run of the commit, as GitHub Actions reports one workflow."""
        runs = self.repo.check_runs.get(ref, [])
        if not runs:
            return 200, {"total_count": 0, "check_suites": []}
        done = all(r["status"] == "completed" for r in runs)
        red = any(r["conclusion"] not in ("success", "neutral", "skipped") for r in runs if r["status"] == "completed")
        suite = {"id": runs[0]["id"] + 1_000_000, "head_sha": ref, "status": "completed" if done else "in_progress",
                 "conclusion": ("failure" if red else "success") if done else None}
        return 200, {"total_count": 1, "check_suites": [suite]}

    def _combined_status(self, ref: str, **_: Any) -> tuple[int, Any]:
        statuses = list(reversed(self.repo.statuses.get(ref, [])))  # newest first, as GitHub lists them
        states = {s["state"] for s in statuses}
        state = "failure" if states & {"failure", "error"} else "pending" if "pending" in states or not statuses else "success"
        return 200, {"state": state, "statuses": statuses, "sha": ref, "total_count": len(statuses)}

    def _post_status(self, sha: str, *, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        status = {"id": self._id(), "state": body.get("state"), "context": body.get("context", "default"),
                  "description": body.get("description", ""), "target_url": body.get("target_url")}
        self.repo.statuses.setdefault(sha, []).append(status)
        return 201, status

    def _git(self, *args: str) -> str | None:
        proc = subprocess.run(["git", "-C", str(self.repo.bare), *args], capture_output=True, text=True, timeout=30)
        return proc.stdout.strip() if proc.returncode == 0 else None


def _stamp() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

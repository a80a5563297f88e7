"""The calls gastown makes on one repository, as thin methods over ``GitHubClient``.

Each method is one REST call (or one paginated listing) and returns GitHub's JSON as it
came; deciding what it means is left to ``sync``, ``pulls`` and ``pr_policy``. Errors
are the client's ``GitHubError`` family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gastown.github.client import GitHubClient, Response


@dataclass
class Repo:
    """``owner/name`` on the client's API."""

    client: GitHubClient
    full_name: str

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    def path(self, tail: str) -> str:
        return f"/repos/{self.full_name}{tail}"

    # -- issues --------------------------------------------------------------------------

    def labelled_issues(self, label: str, *, etag: str | None = None) -> Response:
        """The first page (100) of open issues carrying ``label``, conditionally (304 if unchanged).

        Pull requests (which GitHub lists among issues) are left in; callers skip them."""
        return self.client.get(self.path("/issues"), params={"labels": label, "state": "open", "per_page": 100,
                                                              "sort": "created", "direction": "asc"}, etag=etag)

    def all_labelled_issues(self, label: str) -> list[dict[str, Any]]:
        return list(self.client.paginate(self.path("/issues"), params={"labels": label, "state": "open",
                                                                        "sort": "created", "direction": "asc"}))

    def issue(self, number: int, *, etag: str | None = None) -> Response:
        return self.client.get(self.path(f"/issues/{number}"), etag=etag)

    def comment(self, number: int, body: str) -> None:
        self.client.request("POST", self.path(f"/issues/{number}/comments"), json={"body": body})

    def close_issue(self, number: int) -> None:
        self.client.request("PATCH", self.path(f"/issues/{number}"), json={"state": "closed", "state_reason": "completed"})

    # -- pull requests -------------------------------------------------------------------

    def open_pull_for(self, branch: str) -> dict[str, Any] | None:
        """The open PR whose head is ``branch`` of this repository, if any."""
        found = self.client.get(self.path("/pulls"), params={"head": f"{self.owner}:{branch}", "state": "open"}).data
        return found[0] if found else None

    def create_pull(self, *, title: str, body: str, head: str, base: str, draft: bool) -> dict[str, Any]:
        data: dict[str, Any] = self.client.request("POST", self.path("/pulls"), json={
            "title": title, "body": body, "head": head, "base": base, "draft": draft}).data
        return data

    def update_pull(self, number: int, *, title: str, body: str) -> dict[str, Any]:
        data: dict[str, Any] = self.client.request("PATCH", self.path(f"/pulls/{number}"),
                                                   json={"title": title, "body": body}).data
        return data

    def close_pull(self, number: int) -> None:
        self.client.request("PATCH", self.path(f"/pulls/{number}"), json={"state": "closed"})

    def pull(self, number: int, *, etag: str | None = None) -> Response:
        return self.client.get(self.path(f"/pulls/{number}"), etag=etag)

    def merge_pull(self, number: int, *, sha: str, method: str) -> Response:
        """Merge if GitHub allows it now; 405 (not mergeable: checks or reviews required) and
        409 (the head moved) are answers, not errors."""
        return self.client.request("PUT", self.path(f"/pulls/{number}/merge"), json={"sha": sha, "merge_method": method},
                                   ok=(405, 409))

    def review_comment(self, number: int, *, commit: str, path: str, line: int, body: str) -> None:
        self.client.request("POST", self.path(f"/pulls/{number}/comments"), json={
            "commit_id": commit, "path": path, "line": line, "side": "RIGHT", "body": body})

    def reviews(self, number: int, *, etag: str | None = None) -> Response:
        return self.client.get(self.path(f"/pulls/{number}/reviews"), params={"per_page": 100}, etag=etag)

    def comments_of_review(self, number: int, review_id: int) -> list[dict[str, Any]]:
        return list(self.client.paginate(self.path(f"/pulls/{number}/reviews/{review_id}/comments")))

    def check_runs(self, sha: str, *, etag: str | None = None) -> Response:
        return self.client.get(self.path(f"/commits/{sha}/check-runs"), params={"per_page": 100}, etag=etag)

    def combined_status(self, sha: str) -> dict[str, Any]:
        data: dict[str, Any] = self.client.get(self.path(f"/commits/{sha}/status")).data
        return data

"""The host's side of reporting back: `gt done`, `gt escalate`, `gt mail` and `gt prime`
run by an agent on an SSH host, where there is no town, only the hub's server at the end
of a unix socket (``GT_HUB_SOCKET``, forwarded over the host's SSH master by
``SshHost.ensure_hub_tunnel``) and the run's token in a 0600 file (``GT_TOKEN_FILE``).

Cheap to start: ``http.client`` over ``AF_UNIX``, no ledger, no config, no pydantic. The
token is read from its file and sent in a header; it never reaches a command line.
The server's routes and answers: ``server/agent_api.py``. A hub that does not answer is
``NotRunning`` with one sentence: nothing is lost, the work stays in the worktree.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gastown import errors
from gastown.errors import GastownError, InvalidInput, NotRunning

HUB_SOCKET = "GT_HUB_SOCKET"
TOKEN_FILE = "GT_TOKEN_FILE"
DONE_TIMEOUT = 330.0  # the hub fetches the branch over SSH (git's own limit there: 300 s)
TIMEOUT = 60.0
NO_HUB = "the town's hub does not answer through the tunnel"
# Kinds of error the server names that keep their exit code here (the rest exit 1).
KINDS: dict[str, type[GastownError]] = {
    name: getattr(errors, name) for name in ("Conflict", "NotFound", "InvalidInput", "NotRunning", "ConfigError")
}


def is_remote_agent(environ: Mapping[str, str]) -> bool:
    """An agent on another host: it has a tunnel to the hub and no town of its own."""
    return bool(environ.get(HUB_SOCKET)) and not environ.get("GT_TOWN")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("127.0.0.1", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class HubClient:
    """One agent's calls to its town (``from_env``)."""

    socket_path: str
    spawn: str
    token_file: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> HubClient:
        missing = [name for name in (HUB_SOCKET, TOKEN_FILE, "GT_SPAWN") if not environ.get(name)]
        if missing:
            raise InvalidInput(f"this agent's environment lacks {', '.join(missing)}: it cannot reach its town",
                               hint="the run was started by an older or broken gastown; escalate to a person")
        return cls(environ[HUB_SOCKET], environ["GT_SPAWN"], environ[TOKEN_FILE])

    def _token(self) -> str:
        try:
            token = Path(self.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise GastownError(f"cannot read this run's token at {self.token_file}: {exc.strerror}",
                               hint="the run cannot report to its town; its work stays in this worktree") from None
        if not token:
            raise GastownError(f"this run's token file {self.token_file} is empty",
                               hint="the run cannot report to its town; its work stays in this worktree")
        return token

    def call(self, method: str, path: str, payload: Mapping[str, Any] | None = None, *, query: Mapping[str, str] | None = None,
             timeout: float = TIMEOUT, unanswered: str = "nothing was sent; run it again in a minute") -> Any:
        """The decoded JSON answer; raises the error the server names (``kind``), or
        ``NotRunning`` (``NO_HUB`` and ``unanswered``) when nothing answers."""
        headers = {"Authorization": f"Bearer {self._token()}", "X-GT-Spawn": self.spawn, "Accept": "application/json"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        connection = _UnixConnection(self.socket_path, timeout)
        try:
            connection.request(method, url, body=body, headers=headers)
            response = connection.getresponse()
            status, raw = response.status, response.read()
        except (OSError, http.client.HTTPException):
            raise NotRunning(f"{NO_HUB}: {unanswered}", hint="the town may be down or this host cut off; nothing is lost") from None
        finally:
            connection.close()
        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise NotRunning(f"{NO_HUB}: {unanswered}",
                             hint=f"it answered {status} with no JSON; the town's server may be restarting") from None
        if status >= 400:
            error = document.get("error") if isinstance(document, dict) else None
            hint = document.get("hint") if isinstance(document, dict) else None
            kind = KINDS.get(str(document.get("kind")) if isinstance(document, dict) else "", GastownError)
            raise kind(str(error or f"the town refused ({status})"), hint=hint)
        return document


# -- the commands ---------------------------------------------------------------------------


def remote_done(environ: Mapping[str, str], cwd: Path, *, blocked: str | None) -> dict[str, Any]:
    """`gt done [--blocked R]` on a host: the worktree part here (the same branch check,
    auto-save and commits-ahead check as on the hub, against the target the host's mirror
    holds), then the hub fetches the branch and records it. `gt done --json`'s document."""
    from gastown.git import submit
    from gastown.git.cmd import Git

    client = HubClient.from_env(environ)
    missing = [name for name in ("GT_ISSUE", "GT_BRANCH", "GT_TARGET") if not environ.get(name)]
    if missing:
        raise InvalidInput(f"this agent's environment lacks {', '.join(missing)}", hint="escalate to a person")
    top = Git(cwd).run("rev-parse", "--show-toplevel", check=False)
    if not top.ok:
        raise InvalidInput(f"{cwd} is not inside this agent's worktree", hint="cd into your worktree and run gt done there")
    offer = submit.prepare(Path(top.stdout.strip()), issue=environ["GT_ISSUE"], branch=environ["GT_BRANCH"],
                           target=environ["GT_TARGET"], blocked=blocked is not None)
    payload = {"head": offer.head, "branch": environ["GT_BRANCH"], "blocked": blocked, "saved": offer.saved}
    document: dict[str, Any] = client.call(
        "POST", "/agent/done", payload, timeout=DONE_TIMEOUT,
        unanswered="your commits are safe in this worktree; run gt done again in a minute",
    )
    return document


def remote_prime(environ: Mapping[str, str]) -> str:
    return str(HubClient.from_env(environ).call("GET", "/agent/prime")["text"])


def remote_escalate(environ: Mapping[str, str], message: str, *, severity: str, issue: str | None) -> dict[str, Any]:
    document: dict[str, Any] = HubClient.from_env(environ).call(
        "POST", "/agent/escalate", {"message": message, "severity": severity, "issue": issue})
    return document


def remote_mail_send(environ: Mapping[str, str], to: str, subject: str, body: str) -> dict[str, Any]:
    document: dict[str, Any] = HubClient.from_env(environ).call(
        "POST", "/agent/mail", {"to": to, "subject": subject, "body": body})
    return document


def remote_mail_inbox(environ: Mapping[str, str], *, include_read: bool) -> tuple[str, list[dict[str, Any]]]:
    document = HubClient.from_env(environ).call("GET", "/agent/mail", query={"all": "1"} if include_read else None,
                                                unanswered="run it again in a minute")
    return str(document["address"]), list(document["messages"])


def remote_mail_read(environ: Mapping[str, str], mail_id: str) -> dict[str, Any]:
    document: dict[str, Any] = HubClient.from_env(environ).call(
        "GET", f"/agent/mail/{urllib.parse.quote(mail_id, safe='')}", unanswered="run it again in a minute")
    return document

"""What a failed talk with a remote means, in words a person can act on. Pure.

git's own last line is often useless on its own (``and the repository exists.`` is the
tail of a three-line SSH message), so a clone, fetch or probe that fails is explained
from git's whole output: the remote refused who we are, the repository is not there,
or the network did not get us there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gastown.errors import GitError

_AUTH = re.compile(
    r"permission denied \((publickey|password|keyboard)|authentication failed|could not read username"
    r"|could not read password|terminal prompts disabled|invalid username or password|http (401|403)"
    r"|the requested url returned error: (401|403)|host key verification failed", re.I)
_MISSING = re.compile(
    r"repository not found|does not appear to be a git repository|not a git repository"
    r"|the requested url returned error: 404|project .* not found|no such file or directory", re.I)
_NETWORK = re.compile(
    r"could not resolve host|name or service not known|temporary failure in name resolution|connection refused"
    r"|connection timed out|operation timed out|network is unreachable|no route to host|connection reset"
    r"|unable to access .*: failed to connect|ssl|tls", re.I)


@dataclass(frozen=True)
class Explained:
    what: str  # what went wrong, as the end of a sentence
    hint: str  # what to do


def explain(output: str, remote: str) -> Explained:
    """Why talking to ``remote`` failed, judged from git's whole output.

    >>> explain("ERROR: Repository not found.\\nfatal: Could not read from remote repository.\\n\\n"
    ...         "Please make sure you have the correct access rights\\nand the repository exists.", "git@h:a/b.git").what
    'git@h:a/b.git does not exist, or this account cannot see it'
    >>> explain("ssh: Could not resolve hostname nowhere: Name or service not known", "nowhere:x").what
    'the network did not get to nowhere:x'
    """
    if _AUTH.search(output):
        return Explained(f"{remote} refused to let us in (authentication)",
                         "check the credentials git uses non-interactively: an SSH key in ssh-agent, or a "
                         "credential helper or token for HTTPS (gastown never prompts)")
    if _MISSING.search(output):
        return Explained(f"{remote} does not exist, or this account cannot see it",
                         "check the URL or path, and that your account can read the repository")
    if _NETWORK.search(output):
        return Explained(f"the network did not get to {remote}",
                         "check the network, any proxy, and that the host is up; then try again")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    fatal = [line for line in lines if line.lower().startswith(("fatal:", "error:"))]
    said = (fatal or lines or ["no output"])[0]
    return Explained(f"git said: {said}", "run the same git command by hand to see the whole story")


def remote_error(exc: GitError, doing: str, remote: str) -> GitError:
    """``exc`` (a failed clone, fetch, ls-remote...) as one sentence saying what failed, why
    and what to do; the command and its full output stay on the error."""
    explained = explain(exc.output or exc.message, remote)
    return GitError(f"{doing} failed: {explained.what}", argv=exc.argv, returncode=exc.returncode,
                    output=exc.output, hint=explained.hint)

"""The shape of gastown.toml as pydantic models; every default lives here.

Unknown keys are errors (a typo must never pass silently), types are strict (``batch =
"4"`` is refused, not coerced) and durations accept ``"90s"``, ``"15m"``, ``"2h"``.
``gastown.toml.example`` documents every key; keep the two in step.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from gastown.config.durations import parse_duration
from gastown.names import NAME_RE, PREFIX_RE, RESERVED_RIG_NAMES


def _duration(value: object) -> float:
    return parse_duration(value)


def _argv(value: object) -> object:
    # A command may be written as one string; it is split like a shell would, never run by one.
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot be split into arguments ({exc})") from None
        if not parts:
            raise ValueError("must not be empty")
        return parts
    return value


def _nonempty_argv(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("must not be empty")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression ({exc})") from None
    return value


_SIZE = re.compile(r"(\d+)\s*(b|kb|kib|mb|mib)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1024, "kib": 1024, "mb": 1024 * 1024, "mib": 1024 * 1024}
MAX_BODY_LIMIT = 25 * 1024 * 1024  # GitHub delivers nothing larger


def parse_size(value: object) -> int:
    """Bytes for ``"256KB"``, ``"1MB"``, ``"512B"`` or a number (KB and MB are 1024-based).

    >>> parse_size("256KB"), parse_size("1 MiB"), parse_size(300)
    (262144, 1048576, 300)
    """
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        size = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    else:
        raise ValueError(f'must be a size like "256KB" or "1MB", not {value!r}')
    if not 1 <= size <= MAX_BODY_LIMIT:
        raise ValueError(f"must be between 1 byte and 25MB (GitHub sends nothing larger), not {size} bytes")
    return size


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an environment variable name (it names the variable, it is not the value)")
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
ByteSize = Annotated[int, BeforeValidator(parse_size)]
EnvName = Annotated[str | None, AfterValidator(_env_name)]
Argv = Annotated[list[str], BeforeValidator(_argv), AfterValidator(_nonempty_argv)]
Regex = Annotated[str, AfterValidator(_regex)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class EndpointConfig(_Section):
    """Where a model lives: a base URL, the NAME of the variable holding its key, a model."""

    base_url: str | None = None
    api_key_env: str | None = None
    model: str | None = None


class ModelConfig(EndpointConfig):
    """``[town.model]``: one endpoint for every runtime (a gateway), refined per provider."""

    anthropic: EndpointConfig | None = None
    openai: EndpointConfig | None = None
    gemini: EndpointConfig | None = None


class TownSection(_Section):
    name: str | None = None
    default_agent: str = "claude"
    max_polecats: int = Field(12, ge=1)
    budget: float | None = Field(None, gt=0)
    model: ModelConfig | None = None


class Price(_Section):
    """US dollars per million tokens."""

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)
    cache_read: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)


class Dialog(_Section):
    """A screen an agent may show at start-up, and the keys that answer it."""

    match: Regex
    keys: list[str] = Field(min_length=1)


class AgentConfig(_Section):
    """A runtime: how to start one agent CLI and read its screen.

    A table named like a built-in preset overrides only the keys it sets; any other
    name defines a new runtime (``preset = "claude"`` borrows a preset's defaults).
    """

    preset: str | None = None
    command: Argv | None = None
    prompt: Literal["arg", "paste"] | None = None
    ready: Regex | None = None
    busy: Regex | None = None
    ready_delay: Duration | None = None
    env: dict[str, str] = Field(default_factory=dict)
    dialogs: list[Dialog] | None = None
    rate_limit: list[Regex] | None = None
    mode: Literal["tui", "headless"] | None = None
    headless: Argv | None = None
    submit: Literal["agent", "gastown"] | None = None
    model: EndpointConfig | None = None


Severity = Literal["critical", "warning", "suggestion", "nitpick"]
Focus = Literal["security", "bugs", "performance", "tests", "style", "docs"]
FOCUS_AREAS: tuple[Focus, ...] = ("security", "bugs", "performance", "tests", "style", "docs")


class AnalyzerLevels(_Section):
    """The severity a SARIF result of each level becomes (``none``: the result is ignored)."""

    error: Severity | Literal["none"] = "warning"
    warning: Severity | Literal["none"] = "suggestion"
    note: Severity | Literal["none"] = "nitpick"
    none: Severity | Literal["none"] = "none"


class ReviewConfig(_Section):
    """``[rigs.<name>.review]``: an AI reviewer reads every MR's diff before it joins a batch.

    No table, no review (reviews cost tokens). Style is tone only; ``block_on`` is the
    lowest severity that stops a merge.
    """

    agent: str | None = None
    style: Literal["balanced", "strict", "lenient", "roast"] = "balanced"
    block_on: Literal["critical", "warning"] = "critical"
    focus: list[Focus] = Field(default_factory=lambda: list(FOCUS_AREAS))
    max_diff_lines: int = Field(5000, ge=1)
    max_reviews: int = Field(4, ge=1)
    timeout: Duration = Field(900.0, gt=0)
    analyzers: list[str] = Field(default_factory=list)
    analyzer_levels: AnalyzerLevels = Field(default_factory=AnalyzerLevels)
_GITHUB_REPO_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


def _github_repo(value: str) -> str:
    if not _GITHUB_REPO_RE.match(value) or value.endswith((".git", "/.", "/..")):
        raise ValueError(f'{value!r} is not "owner/name" (as in github.com/owner/name, without .git)')
    return value


def _api_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"must be an http(s) URL such as https://github.example.com/api/v3, not {value!r}")
    return value.rstrip("/")


class GitHubConfig(_Section):
    """``[rigs.<name>.github]``: the rig's GitHub repository (docs/github.md).

    Labelled issues are imported (and slung); with ``merge = "pr"`` the Refinery opens a
    pull request instead of pushing to the target. No table: the rig never talks to GitHub.
    """

    repo: Annotated[str, AfterValidator(_github_repo)]
    token_env: Annotated[str, AfterValidator(_env_name)] = "GITHUB_TOKEN"
    api_url: Annotated[str, AfterValidator(_api_url)] = "https://api.github.com"
    label: str = Field("gastown", min_length=1)
    sling: bool = True
    merge: Literal["direct", "pr"] = "direct"
    auto_merge: bool = True
    merge_method: Literal["merge", "squash", "rebase"] = "squash"
    draft: bool = False
    webhook_secret_env: EnvName = None
    poll_interval: Duration = Field(60.0, gt=0)


# `user@host` or `host` (a name, an IPv4 address, or [IPv6]); never an ssh option ("-o...").
SSH_TARGET_RE = re.compile(r"^(?:[A-Za-z0-9_.][A-Za-z0-9_.-]*@)?(?:[A-Za-z0-9_.][A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.]+\])$")
LOCAL_HOST = "local"


def _ssh_target(value: str) -> str:
    if not SSH_TARGET_RE.match(value):
        raise ValueError(f"{value!r} is not `user@host` or `host` (letters, digits, '.', '-', '_'; an IPv6 address in [])")
    return value


def _remote_root(value: str) -> str:
    if not (value.startswith("/") or value.startswith("~/")):
        raise ValueError(f"{value!r} must be an absolute path or start with ~/ (the SSH user's home)")
    if any(ch in value for ch in "\n\r\0") or "/../" in value + "/":
        raise ValueError(f"{value!r} must be a plain path (no newlines, no '..')")
    return value.rstrip("/") or "/"


class HostConfig(_Section):
    """``[hosts.<name>]``: a machine that runs polecats, reached from the hub over SSH."""

    ssh: Annotated[str, AfterValidator(_ssh_target)]
    port: int | None = Field(None, ge=1, le=65535)
    identity_file: str | None = Field(None, min_length=1)
    max_polecats: int | None = Field(None, ge=1)
    root: Annotated[str, AfterValidator(_remote_root)] = "~/gastown"
    grace: Duration = Field(600.0, gt=0)


class RigConfig(_Section):
    repo: str = Field(min_length=1)
    branch: str = "main"
    prefix: str | None = None
    agent: str | None = None
    max_polecats: int | None = Field(None, ge=1)
    gates: list[str] = Field(default_factory=list)
    gate_timeout: Duration | None = None
    merge: Literal["rebase", "squash", "merge"] | None = None
    batch: int | None = Field(None, ge=1)
    max_fix_cycles: int | None = Field(None, ge=0)
    prompt_template: str | None = None
    names: list[str] | None = None
    mode: Literal["tui", "headless"] | None = None
    budget: float | None = Field(None, gt=0)
    review: ReviewConfig | None = None
    github: GitHubConfig | None = None
    hosts: list[str] = Field(default_factory=lambda: [LOCAL_HOST], min_length=1)

    @model_validator(mode="after")
    def _check_prefix(self) -> RigConfig:
        if self.prefix is not None and not PREFIX_RE.match(self.prefix):
            raise ValueError("prefix must be 1-12 lowercase letters or digits, starting with a letter")
        return self


class WitnessConfig(_Section):
    patrol_interval: Duration = Field(5.0, gt=0)
    spawn_grace: Duration = 180.0
    stall_after: Duration = 900.0
    idle_after: Duration = 120.0
    max_nudges: int = Field(2, ge=0)
    max_restarts: int = Field(3, ge=0)
    rate_limit_backoff: Duration = 900.0
    idle_reap_after: Duration = 900.0
    stop_timeout: Duration = 10.0


class RefineryConfig(_Section):
    """Town-wide defaults for every rig's merge queue; a rig's own keys win."""

    batch: int = Field(4, ge=1)
    merge: Literal["rebase", "squash", "merge"] = "rebase"
    gate_timeout: Duration = Field(1200.0, gt=0)
    max_fix_cycles: int = Field(3, ge=0)


NotifyEvent = Literal["escalation", "blocked", "hold", "merged", "budget"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = ("escalation", "blocked", "hold", "merged", "budget")


class NotifyConfig(_Section):
    """One ``[[notify]]`` entry: where to send which events (docs/config.md, "Notifications").

    Exactly one of ``command`` (run with the event as JSON on stdin) and ``url`` (a JSON
    POST, e.g. a Slack or Discord incoming webhook).
    """

    name: str | None = None
    on: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS), min_length=1)
    command: Argv | None = None
    url: str | None = None
    timeout: Duration = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> NotifyConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of command = [...] or url = \"https://...\"")
        if self.url is not None and not re.match(r"^https?://[^/\s]+", self.url):
            raise ValueError("url must start with https:// (or http://) and name a host")
        return self


class ServerConfig(_Section):
    """``[server]``: the town's HTTP server (`gt serve`), started by `gt up` when enabled."""

    enabled: bool = True
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8470, ge=0, le=65535)  # 0: any free port (the one chosen is in gt status)
    token_env: EnvName = None  # NAME of the variable holding the token every non-hook endpoint needs
    public_url: str | None = None  # base URL senders reach the server at, when not host:port (a proxy)

    @field_validator("public_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^/\s]+", value):
            raise ValueError(f"must be an http(s) URL such as https://hooks.example.com, not {value!r}")
        return value.rstrip("/") if value else value


class TriggerFilter(_Section):
    """Which GitHub-style requests a webhook trigger acts on (the others are answered and ignored)."""

    event: str | None = None  # the X-GitHub-Event header
    action: str | None = None  # the body's "action"
    label: str | None = None  # the label just added (label.name), else one of the labels


class TriggerConfig(_Section):
    """``[triggers.<name>]``: a webhook URL or a cron schedule that renders an issue and slings it."""

    rig: str = Field(min_length=1)
    kind: Literal["webhook", "schedule"]
    agent: str | None = None
    title: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    priority: int = Field(2, ge=0, le=4)
    auth: Literal["secret", "github", "none"] = "secret"
    secret_env: EnvName = None
    max_in_flight: int = Field(20, ge=1)
    max_body: ByteSize = 256 * 1024
    filter: TriggerFilter | None = None
    schedule: str | None = None
    timezone: str = "UTC"

    @field_validator("title", "prompt")
    @classmethod
    def _check_placeholders(cls, value: str, info: ValidationInfo) -> str:
        from gastown.triggers.template import check_template

        kind = info.data.get("kind")
        if kind is not None:
            problems = check_template(value, kind)
            if problems:
                raise ValueError(problems[0])
        return value

    @field_validator("schedule")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        from gastown.triggers.cron import CronError, parse_cron

        if value is not None:
            try:
                parse_cron(value)
            except CronError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        from gastown.triggers.cron import CronError, zone

        try:
            zone(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> TriggerConfig:
        if self.kind == "schedule":
            if self.schedule is None:
                raise ValueError('kind = "schedule" needs schedule = "<cron expression>", e.g. "0 3 * * 1"')
            if self.filter is not None:
                raise ValueError("filter applies to webhook triggers only")
            import time

            from gastown.triggers.cron import Schedule, next_run

            if next_run(Schedule.parse(self.schedule, self.timezone), time.time()) is None:
                raise ValueError(f"schedule {self.schedule!r} never fires")
        else:
            if self.schedule is not None:
                raise ValueError('schedule applies to kind = "schedule" only')
            if self.auth != "none" and self.secret_env is None:
                raise ValueError(
                    f'auth = "{self.auth}" needs secret_env = "<NAME of the variable holding the secret>" '
                    '(or auth = "none" for calls from this machine only)'
                )
        return self


class TownConfig(_Section):
    town: TownSection = Field(default_factory=TownSection)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    rigs: dict[str, RigConfig] = Field(default_factory=dict)
    hosts: dict[str, HostConfig] = Field(default_factory=dict)
    witness: WitnessConfig = Field(default_factory=WitnessConfig)
    refinery: RefineryConfig = Field(default_factory=RefineryConfig)
    prices: dict[str, Price] = Field(default_factory=dict)
    notify: list[NotifyConfig] = Field(default_factory=list)
    server: ServerConfig = Field(default_factory=ServerConfig)
    triggers: dict[str, TriggerConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_names(self) -> TownConfig:
        prefixes: dict[str, str] = {}
        for name in self.rigs:
            if not NAME_RE.match(name) or name in RESERVED_RIG_NAMES:
                raise ValueError(
                    f"rig name {name!r} must be lowercase letters, digits, '-' or '_' (and not 'mayor')"
                )
            prefix = self.rig_prefix(name)
            if prefix in prefixes:
                raise ValueError(f"rigs {prefixes[prefix]!r} and {name!r} share the prefix {prefix!r}")
            prefixes[prefix] = name
        for name in self.agents:
            if not NAME_RE.match(name):
                raise ValueError(f"agent name {name!r} must be lowercase letters, digits, '-' or '_'")
        for name in self.triggers:
            if not NAME_RE.match(name):
                raise ValueError(f"trigger name {name!r} must be lowercase letters, digits, '-' or '_'")
        self._check_hosts()
        return self

    def _check_hosts(self) -> None:
        for name in self.hosts:
            if not NAME_RE.match(name) or name == LOCAL_HOST:
                raise ValueError(
                    f"hosts.{name}: a host name must be lowercase letters, digits, '-' or '_' (and not {LOCAL_HOST!r})"
                )
        for rig, cfg in self.rigs.items():
            seen: set[str] = set()
            for host in cfg.hosts:
                if host != LOCAL_HOST and host not in self.hosts:
                    raise ValueError(
                        f"rigs.{rig}.hosts: unknown host {host!r} (add a [hosts.{host}] table, or use {LOCAL_HOST!r})"
                    )
                if host in seen:
                    raise ValueError(f"rigs.{rig}.hosts: {host!r} is listed twice")
                seen.add(host)
                if host != LOCAL_HOST and not self.server.enabled:
                    raise ValueError(
                        f"rigs.{rig}.hosts lists {host!r}, but server.enabled is false: agents on other hosts "
                        "report back through the town's server (set server.enabled = true)"
                    )

    def secret_env_names(self) -> frozenset[str]:
        """The NAMES of every variable gastown.toml says holds a secret: GitHub tokens and
        webhook secrets, the server token, trigger secrets."""
        names = {self.server.token_env} | {t.secret_env for t in self.triggers.values()}
        for rig in self.rigs.values():
            if rig.github is not None:
                names |= {rig.github.token_env, rig.github.webhook_secret_env}
        return frozenset(n for n in names if n)

    def without_secrets(self, environ: Mapping[str, str]) -> dict[str, str]:
        """``environ`` minus the secret variables (``secret_env_names``): what an agent, a
        reviewer or a gate may inherit. Secrets stay with gastown."""
        secret = self.secret_env_names()
        return {k: v for k, v in environ.items() if k not in secret}

    def rigs_using_host(self, host: str) -> list[str]:
        """The rigs whose ``hosts`` list names ``host``, sorted."""
        return sorted(rig for rig, cfg in self.rigs.items() if host in cfg.hosts)

    def rig_prefix(self, rig: str) -> str:
        cfg = self.rigs[rig]
        return cfg.prefix or default_prefix(rig)

    def rig_prefixes(self) -> dict[str, str]:
        """Every rig's issue prefix, by rig name."""
        return {rig: self.rig_prefix(rig) for rig in self.rigs}


def default_prefix(rig: str) -> str:
    """A prefix derived from a rig name: its letters and digits, at most 12.

    >>> default_prefix("my-app_2"), default_prefix("9lives")
    ('myapp2', 'r9lives')
    """
    cleaned = re.sub(r"[^a-z0-9]", "", rig.lower())[:12] or "rig"
    return cleaned if cleaned[0].isalpha() else ("r" + cleaned)[:12]

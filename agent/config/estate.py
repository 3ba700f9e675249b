"""The estate file (botwatch.yaml): strict validation with `FILE:LINE: message` errors.

The YAML is composed once to learn where every key sits, then validated by pydantic; each
pydantic error is mapped back to the line of the offending key, so users fix the right line.
"""

from __future__ import annotations

import os
import re
import reprlib
import zoneinfo
import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from cronsim import CronSim, CronSimError
from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ..core import extras
from ..core.classify import matcher_problem
from ..core.items import MAX_ITEMS
from ..core.vocabulary import LookupKind, Reason
from .base import BotName, Duration, Regex, _Strict
from .platforms import Platforms

PLATFORMS = (
    "uipath", "robotframework", "python", "powerautomate", "blueprism",
    "automationanywhere", "robocorp", "excel", "shell", "other",
)
DEFAULT_LISTEN = "127.0.0.1:9464"


class ConfigError(Exception):
    """Every problem of one estate file, each as `FILE:LINE: message`."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems




class FailurePattern(_Strict):
    """A failure pattern: exactly one of `contains` (plain text) or `regex`."""

    reason: Reason
    contains: str | None = None
    regex: str | None = None
    kind: LookupKind | None = None
    ignore_case: bool = False

    @model_validator(mode="after")
    def _one_matcher(self) -> "FailurePattern":
        problem = matcher_problem(self.contains, self.regex)
        if problem:
            raise ValueError(problem)
        return self


class Limits(_Strict):
    """Bounds on what clients may send; beyond them the agent answers 413 or 429 and counts."""

    max_body_bytes: int = Field(default=8_388_608, ge=1024)  # 8 MiB: a 1920x1080 PNG screenshot fits
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    events_per_second: float = Field(default=50.0, gt=0)  # per bot, sustained
    burst: int = Field(default=1000, ge=1)  # per bot
    log_excerpt_bytes: int = Field(default=10_240, ge=256)  # kept of a check-in's POST body (the tail)
    max_screens: int = Field(default=50, ge=1)  # per bot: more screens count as "other" and get no baseline
    max_bots: int = Field(default=2000, ge=1)  # bots per agent: auto-registration stops there (counted)
    max_label_length: int = Field(default=64, ge=16, le=1024)  # longer screen names are shortened (counted)
    max_baseline_bytes: int = Field(default=1_048_576, ge=65_536)  # stored per UI baseline (compressed)




class ProcessMatch(_Strict):
    """Which processes are this bot's: regexes searched in the process name, executable path,
    command line (arguments joined by spaces) and, optionally, the user name."""

    name: Regex | None = None
    exe: Regex | None = None
    cmdline: Regex | None = None
    user: Regex | None = None

    @model_validator(mode="after")
    def _something(self) -> "ProcessMatch":
        if self.name is None and self.exe is None and self.cmdline is None:
            raise ValueError("watch.process needs at least one of 'name', 'exe' or 'cmdline'")
        return self


class LogSpec(_Strict):
    """A log file (or glob) of this bot, and how to read it."""

    path: str
    format: Literal["uipath", "robot", "regex", "python"]
    process_name: str | None = None  # uipath: the bot's lines in a log shared by several processes
    start: Regex | None = None  # regex / python: a run starts (named group `run_id` optional)
    end: Regex | None = None  # a run ends (named groups `run_id`, `status` optional)
    error: Regex | None = None  # an error line: classified, fails the current run
    run_id: Regex | None = None  # named group `run_id` found on any line
    encoding: str = "utf-8"

    @model_validator(mode="after")
    def _regex_needs_patterns(self) -> "LogSpec":
        if self.format == "regex" and self.start is None and self.end is None and self.error is None:
            raise ValueError("a 'regex' log needs at least one of 'start', 'end' or 'error'")
        return self


SELECTOR_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _selector(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("a selector is a string: CSS, XPath (starting with / or '('), or with a prefix css:, "
                         "xpath:, id:, name:")
    if not extras.available("drift"):  # nothing compares snapshots (the agent says so): checked once the extra is in
        return v
    from ..ui.selectors import to_xpath  # imports lxml and cssselect: only for estates that declare selectors

    to_xpath(v)
    return v


def _rect(v: Any) -> Any:
    if (not isinstance(v, (list, tuple)) or len(v) != 4
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in v)):
        raise ValueError(f"a mask rectangle is [x0, y0, x1, y1] in screenshot pixels (got {v!r})")
    x0, y0, x1, y1 = v
    if min(v) < 0 or x1 <= x0 or y1 <= y0:
        raise ValueError(f"mask rectangle {list(v)} must have 0 <= x0 < x1 and 0 <= y0 < y1")
    return tuple(v)


class UiScreenConfig(_Strict):
    """A screen of a bot: the selectors the bot depends on, and the volatile areas of its screenshots."""

    selectors: dict[str, Annotated[str, BeforeValidator(_selector)]] = {}
    mask: list[Annotated[tuple[int, int, int, int], BeforeValidator(_rect)]] = []  # [x0, y0, x1, y1], pixels

    @field_validator("selectors", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        for name in v if isinstance(v, dict) else ():
            if not isinstance(name, str) or not SELECTOR_NAME.match(name):
                raise ValueError(f"selector name {name!r} must be 1-64 of A-Z a-z 0-9 _ . - (it is a metric label)")
        return v


class UiConfig(_Strict):
    """UI drift settings of a bot (see docs/ui-drift.md)."""

    drift_warning: float = Field(default=0.3, ge=0.0, le=1.0)  # score at or above which a screen is drifting
    screens: dict[str, UiScreenConfig] = {}

    @field_validator("screens", mode="before")
    @classmethod
    def _screen_names(cls, v: Any) -> Any:
        for name in v if isinstance(v, dict) else ():
            if not isinstance(name, str) or not (0 < len(name) <= 64) or "/" in name:
                raise ValueError(f"screen name {name!r} must be 1-64 characters without '/'")
        return v


class WatchConfig(_Strict):
    process: ProcessMatch | None = None
    logs: list[LogSpec] = []


class MaintenanceWindow(_Strict):
    """No late or down while inside: starts at each `schedule` (cron, bot timezone), lasts `duration`."""

    schedule: str
    duration: Duration

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        try:
            CronSim(v, _EPOCH_UTC)
        except (CronSimError, ValueError) as exc:
            raise ValueError(f"invalid cron expression {v!r}: {exc}") from None
        return v


def _paths(v: Any) -> Any:
    """`source: PATH` or a list of paths; each a non-empty string."""
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise ValueError("'source' takes a path or a list of paths (folders or files)")
    return items


def _certification(v: Any) -> Any:
    if v is True:
        raise ValueError("say who certified the bot and when: certified: {by: NAME, date: YYYY-MM-DD}")
    if v is False:
        return None
    if isinstance(v, dict) and True in v:
        raise ValueError("YAML reads a bare 'on' as true: write the day as certified.date: YYYY-MM-DD")
    return v


class Certification(_Strict):
    """Who certified a bot and when (`certified: {by: NAME, date: DATE}`, optional `until: DATE`).
    The key is `date`, not `on`: YAML 1.1 reads a bare `on` as the boolean true."""

    by: str = Field(min_length=1)
    date: dt.date
    until: dt.date | None = None  # the certification lapses after this day

    @model_validator(mode="after")
    def _until_after_on(self) -> "Certification":
        if self.until is not None and self.until < self.date:
            raise ValueError("certified.until is before certified.date")
        return self


class OtlpConfig(_Strict):
    """OTLP/HTTP push of the metric catalogue and of run traces (docs/otlp.md). What is left
    unset here comes from the standard OTEL_* environment variables."""

    endpoint: str | None = None  # base URL of an OTLP/HTTP receiver; /v1/metrics and /v1/traces are appended
    headers: dict[str, SecretStr] = {}  # e.g. an API key: `env:NAME`, `file:/path` or the literal value
    timeout: Duration | None = None  # per export request (OTEL_EXPORTER_OTLP_TIMEOUT, else 10s)
    interval: Duration | None = None  # between metric exports (OTEL_METRIC_EXPORT_INTERVAL, else 60s)
    metrics: bool | None = None  # on by default when `endpoint` is set; else OTEL_METRICS_EXPORTER=otlp
    traces: bool | None = None  # off by default; OTEL_TRACES_EXPORTER=otlp also switches them on
    traces_sampling: float | None = Field(default=None, ge=0.0, le=1.0)  # share of runs traced (else OTEL_TRACES_SAMPLER)
    max_queued_spans: int = Field(default=20_000, ge=100)  # spans kept while the endpoint is down; older ones dropped

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"otlp.endpoint {v!r} must be an http:// or https:// URL")
        return v


_HOST_PATTERN = re.compile(r"^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$")


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class AgentConfig(_Strict):
    listen: str = DEFAULT_LISTEN
    journal: str = "./botwatch-journal.db"
    ping_key: SecretStr | None = None
    sweep_interval: Duration = 5.0
    auto_register: bool = False  # accept check-ins and events for bots not in this file
    web_config: str | None = None  # TLS and basic auth, in the format of Prometheus' exporter web-config
    limits: Limits = Limits()
    process_interval: Duration = 5.0  # how often watched processes are swept
    bot_folders: list[str] = []  # scripts run from here are bots: unregistered ones are shadow bots
    snapshots: str | None = None  # watched folder of UI snapshots: <bot>/<screen>/<file>.html|.htm|.json|.png
    alert_routing: str | None = None  # Alertmanager config whose `team` routes governance checks against
    governance_interval: Duration = 300.0  # how often the agent re-runs the governance checks and re-reads the bots' sources
    sd_targets: list[str] = []  # the estate's other agents (host:port), listed by /sd beside this one
    otlp: OtlpConfig = OtlpConfig()
    # host names the agent also answers to (Host header), beside its IP addresses, localhost and
    # this machine's name: "monitor.example.com", "*.example.com", or "*" for any (docs/security.md)
    allowed_hosts: list[str] = []
    api_docs: bool = False  # serve Swagger UI at /api/v1/docs (it loads its script from a CDN)
    # more sources: Python modules (dotted names, on the agent's import path) imported at start,
    # whose Source subclasses register themselves (docs/architecture.md)
    source_modules: list[str] = []

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        parse_listen(v)
        return v

    @field_validator("source_modules")
    @classmethod
    def _dotted_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _MODULE_NAME.fullmatch(name):
                raise ValueError(f"source_modules: {name!r} is not a dotted Python module name")
        return v

    @field_validator("sd_targets")
    @classmethod
    def _sd_host_ports(cls, v: list[str]) -> list[str]:
        for target in v:
            parse_listen(target)
        return v

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if name != "*" and not _HOST_PATTERN.match(name):
                raise ValueError(f"allowed_hosts: {name!r} is not a host name (a name, *.domain or *; no port)")
        return v


class BotConfig(_Strict):
    name: BotName
    # labels of botwatch_bot_info (bot_owner, team): bounded, as every label value is
    owner: str | None = Field(default=None, max_length=254)  # an e-mail address at most
    team: str | None = Field(default=None, max_length=64)
    platform: Literal[PLATFORMS] = "other"  # type: ignore[valid-type]
    lifecycle: Literal["prototype", "certified", "production"] | None = None
    criticality: Literal["low", "medium", "high"] = "medium"
    schedule: str | None = None
    every: Duration | None = None
    timezone: str = "UTC"
    grace: Duration = 900.0
    max_runtime: Duration | None = None
    failure_threshold: int = Field(default=1, ge=1)
    recovery_threshold: int = Field(default=1, ge=1)  # successes in a row before `failing` clears
    min_runtime: Duration | None = None  # a successful run shorter than this did nothing: a failure
    # a successful run that processed fewer work items than this is an empty run (still a success)
    min_items: int | None = Field(default=None, ge=1, le=MAX_ITEMS)
    maintenance: list[MaintenanceWindow] = []
    paused: bool = False
    runbook: str | None = None
    description: str | None = None
    ping_key: SecretStr | None = None  # this bot's own check-in key, besides the estate's
    watch: WatchConfig | None = None
    ui: UiConfig = UiConfig()
    source: Annotated[list[str], BeforeValidator(_paths)] = []  # where the bot's code lives (governance scan)
    certified: Annotated[Certification | None, BeforeValidator(_certification)] = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                CronSim(v, _EPOCH_UTC)
            except (CronSimError, ValueError) as exc:
                raise ValueError(f"invalid cron expression {v!r}: {exc}") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {v!r} (use an IANA name such as Europe/Amsterdam)") from None
        return v

    @field_validator("every")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("'every' must be a positive duration")
        return v

    @model_validator(mode="after")
    def _schedule_xor_every(self) -> "BotConfig":
        if self.schedule is not None and self.every is not None:
            raise ValueError("set either 'schedule' (cron) or 'every' (interval), not both")
        return self

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Estate(_Strict):
    name: str | None = Field(default=None, max_length=64)  # the estate's name (an OTLP resource attribute)
    agent: AgentConfig = AgentConfig()
    failure_patterns: list[FailurePattern] = []
    bots: list[BotConfig] = []
    # RPA control planes the agent pulls runs from (docs/uipath-orchestrator.md)
    platforms: Platforms = Platforms()

    @model_validator(mode="after")
    def _platform_from_rules(self) -> "Estate":
        # a bot whose runs come from one platform's `processes` rules is of that platform when the
        # file does not say (else it would be labelled "other" beside the bots registered from there)
        named: dict[str, set[str]] = {}
        for platform in Platforms.model_fields:
            for conn in getattr(self.platforms, platform):
                for rule in conn.processes:
                    named.setdefault(rule.bot, set()).add(platform)
        for i, b in enumerate(self.bots):
            platforms = named.get(b.name, set())
            if "platform" not in b.model_fields_set and len(platforms) == 1:
                self.bots[i] = b.model_copy(update={"platform": platforms.pop()})
        return self

    def bot(self, name: str) -> BotConfig | None:
        for b in self.bots:
            if b.name == name:
                return b
        return None


class LoadedEstate:
    """A validated estate plus where it came from (relative paths resolve against its folder)."""

    def __init__(self, estate: Estate, path: Path | None):
        self.estate = estate
        self.path = path
        self.base = path.parent if path else Path.cwd()

    def resolve(self, p: str) -> Path:
        q = Path(os.path.expandvars(os.path.expanduser(p)))
        return q if q.is_absolute() else (self.base / q)

    @property
    def journal_path(self) -> Path:
        return self.resolve(self.estate.agent.journal)

    @property
    def listen(self) -> tuple[str, int]:
        return parse_listen(self.estate.agent.listen)

    @property
    def snapshots_path(self) -> Path | None:
        return self.resolve(self.estate.agent.snapshots) if self.estate.agent.snapshots else None


from datetime import datetime, timezone as _tz  # noqa: E402

_EPOCH_UTC = datetime(2024, 1, 1, tzinfo=_tz.utc)


def parse_listen(v: str) -> tuple[str, int]:
    host, sep, port = v.rpartition(":")
    if not sep or not port.isdigit() or not (0 < int(port) < 65536):
        raise ValueError(f"listen address {v!r} must be HOST:PORT, e.g. 127.0.0.1:9464")
    return host.strip("[]") or "127.0.0.1", int(port)


def config_path(explicit: str | os.PathLike | None) -> Path:
    """--config, else $BOTWATCH_CONFIG, else ./botwatch.yaml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("BOTWATCH_CONFIG")
    return Path(env) if env else Path("botwatch.yaml")


# --- loading with line numbers -------------------------------------------------------------

class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    def construct_object(self, node, deep=False):
        # a value PyYAML's constructors fail on without a YAMLError (`!!timestamp x`, a date
        # such as 2024-02-30, an integer over Python's 4300 digits) is a YAML error at its line
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            value = node.value if isinstance(node, yaml.ScalarNode) else node.tag
            why = "" if isinstance(exc, AttributeError) else f": {str(exc)[:200]}"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {str(value)[:60]!r} as {node.tag.rpartition(':')[2]}{why}",
                node.start_mark) from None


class _LineOf:
    """A YAML mark's line as editors count lines (after each \\n). YAML also breaks lines at
    \\x85, U+2028 and U+2029, so its own mark.line can run past the file's last line."""

    def __init__(self, text: str):
        import bisect

        self._bisect = bisect.bisect_right
        self._breaks = [i for i, c in enumerate(text) if c == "\n"]

    def __call__(self, mark) -> int:
        return self._bisect(self._breaks, mark.index - 1) + 1 if mark is not None else 1


def _index_lines(node: yaml.Node, path: tuple, lines: dict, problems: list[str], fname: str,
                 line_of=lambda mark: mark.line + 1) -> None:
    # iterative, and each node once: an alias is indexed where its anchor is (aliases of
    # aliases grow exponentially, `&a [*a]` loops, deep nesting would exhaust the stack)
    lines[path] = line_of(node.start_mark)
    stack, done = [(node, path)], set()
    while stack:
        node, path = stack.pop()
        if id(node) in done:
            continue
        done.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for knode, vnode in node.value:
                if not isinstance(knode, yaml.ScalarNode):
                    continue  # a complex key: the constructor reports it
                key = knode.value
                line = line_of(knode.start_mark)
                if key in seen:
                    problems.append(f"{fname}:{line}: {_dotted(path + (key,))}: duplicate key "
                                    f"(first at line {seen[key]})")
                seen[key] = line
                lines[path + (key,)] = line  # the key's own line wins over its value's
                stack.append((vnode, path + (key,)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = line_of(item.start_mark)
                stack.append((item, path + (i,)))


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and not part.isprintable():
            part = repr(part)  # a key with a line break would break the `FILE:LINE: message` line
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_for(loc: tuple, lines: dict) -> int:
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1)


def parse_estate_text(text: str, fname: str = "<estate>") -> Estate:
    """Validate estate YAML text; raise ConfigError with every problem found."""
    problems: list[str] = []
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            lines: dict = {}
            if node is not None:
                _index_lines(node, (), lines, problems, fname, _LineOf(text))
            data = loader.construct_document(node) if node is not None else {}
        finally:
            loader.dispose()
    except UnicodeEncodeError as exc:  # text with a lone surrogate (never read from a file)
        raise ConfigError([f"{fname}:{text.count(chr(10), 0, exc.start) + 1}: not valid text: {exc.reason}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = _LineOf(text)(mark) if mark else 1
        reason = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, yaml.reader.ReaderError):  # a control character: no mark, a position
            line = text.count("\n", 0, exc.position) + 1
            reason = f"character #x{exc.character:04x}: {exc.reason}" if isinstance(exc.character, int) else exc.reason
        raise ConfigError([f"{fname}:{line}: YAML syntax error: {reason}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{fname}:1: the estate file must be a mapping with 'agent' and 'bots'"])
    problems += _duplicate_bot_names(data, lines, fname)
    try:
        estate = Estate.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
            # pydantic adds the tagged-union / function name to loc; keep the data path only
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key {loc[-1]!r}"
            elif err["type"] == "missing":
                msg = f"missing required key {loc[-1]!r}"
            elif err["type"] == "literal_error":
                got = err.get("input")  # a list or mapping bounded: aliases can make it exponentially large
                msg = f"{err['msg']} (got {repr(got) if isinstance(got, (str, int, float)) else reprlib.repr(got)})"
            problems.append(f"{fname}:{_line_for(loc, lines)}: {_dotted(loc)}: {msg}")
        raise ConfigError(sorted(set(problems), key=_line_key)) from None
    if problems:
        raise ConfigError(sorted(set(problems), key=_line_key))
    return estate


def _duplicate_bot_names(data: dict, lines: dict, fname: str) -> list[str]:
    """Checked on the raw data so that it is reported even when other fields are invalid."""
    out, seen = [], {}
    bots = data.get("bots")
    for i, bot in enumerate(bots if isinstance(bots, list) else []):
        name = bot.get("name") if isinstance(bot, dict) else None
        if not isinstance(name, str):
            continue
        here = _line_for(("bots", i, "name"), lines)
        if name in seen:
            out.append(f"{fname}:{here}: bots[{i}].name: duplicate bot name {name!r} (first at line {seen[name]})")
        else:
            seen[name] = here
    return out


def _line_key(p: str) -> tuple[int, str]:
    m = re.match(r".*?:(\d+): ", p)
    return (int(m.group(1)) if m else 0, p)


def load_estate(path: str | os.PathLike) -> LoadedEstate:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}:0: estate file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}:0: cannot read estate file: {exc}"]) from None
    return LoadedEstate(parse_estate_text(text, str(p)), p.resolve())


def resolve_secret(value: SecretStr | None) -> str | None:
    """`env:NAME`, `file:/path` or a literal key. The result is never logged."""
    if value is None:
        return None
    raw = value.get_secret_value()
    if raw.startswith("env:"):
        return os.environ.get(raw[4:]) or None
    if raw.startswith("file:"):
        try:
            return Path(raw[5:]).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
    return raw

"""axd's settings: every key, its default and its rules, in one place.

Layers, lowest first: the defaults below, the user's TOML file, then `AXD_<SECTION>_<KEY>`
environment variables. `config/axd.toml` in the repository is rendered from `OPTIONS` (a test
keeps the two equal), so the documentation cannot drift from what the daemon accepts.
Services receive a `Config`; they never read files themselves.
"""

from __future__ import annotations

import difflib
import math
import os
import textwrap
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from axd.config.units import UnitError, format_duration, format_size, parse_duration, parse_size
from axd.errors import AxdError, Kind

ENV_PREFIX = "AXD_"
MAX_PROBLEMS_IN_MESSAGE = 10


@dataclass(frozen=True)
class Option:
    """One setting. `default` is written as a user would write it in TOML."""

    key: str
    default: Any
    kind: str  # str | int | float | bool | enum | size | duration
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.key.upper().replace(".", "_")


OPTIONS: tuple[Option, ...] = (
    Option(
        "daemon.log_level",
        "info",
        "enum",
        "Level of the JSON log lines axd writes to stderr.",
        choices=("debug", "info", "warning", "error"),
    ),
    Option(
        "daemon.shutdown_timeout",
        "5s",
        "duration",
        "On SIGTERM or `axctl stop`, how long in-flight requests may take to finish.",
        minimum=0,
        maximum=300,
    ),
    Option(
        "daemon.watch_config",
        True,
        "bool",
        "Reload the config (and the plugin budgets file) when the file changes on disk.",
    ),
    Option(
        "daemon.watch_poll_interval",
        "1s",
        "duration",
        "When the kernel refuses inotify (fs.inotify.max_user_watches reached), a watcher "
        "(workspace, config, plugin folders) polls its folders this often instead, and "
        "says so in status and in a watch.polling event.",
        minimum=0.05,
        maximum=60,
    ),
    Option(
        "api.max_body_size",
        "1MiB",
        "size",
        "Largest request body the API accepts; larger ones get 413.",
        minimum=1024,
        maximum=1 << 30,
    ),
    Option(
        "api.idle_timeout",
        "60s",
        "duration",
        "A connection with no request under way is closed this long after it opened or "
        "after its last answer, also one still sending its request head; a request body "
        "must arrive within it too (else 408). Clients reconnect by themselves.",
        minimum=0.1,
        maximum=3600,
    ),
    Option(
        "api.max_connections",
        256,
        "int",
        "Connections the API keeps open at most: past it, a new connection closes the one "
        "idle the longest (or, if none is idle, its request is answered 503). Lowered to "
        "the daemon's open-files limit (ulimit -n) less 64 when that is smaller; status "
        "shows the cap in force.",
        minimum=8,
        maximum=65536,
    ),
    Option(
        "events.history",
        1000,
        "int",
        "How many recent events the bus keeps for `axctl events` without --follow.",
        minimum=0,
        maximum=1_000_000,
    ),
    Option(
        "events.queue_size",
        1000,
        "int",
        "Events buffered per streaming client; a slower client loses the oldest "
        "and is told how many it missed.",
        minimum=1,
        maximum=1_000_000,
    ),
    Option(
        "health.loop_lag_warn",
        "100ms",
        "duration",
        "Event-loop lag (P99 over the last minute) above which `axctl status` reports the "
        "daemon as degraded, unless the machine's load (1-minute average at or above the "
        "cores) explains it.",
        minimum=0.001,
        maximum=60,
    ),
    Option(
        "codeintel.max_file_size",
        "1MiB",
        "size",
        "Files larger than this are listed but not indexed (counted as too_large).",
        minimum=1024,
        maximum=1 << 30,
    ),
    Option(
        "codeintel.excludes",
        [".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox"],
        "list",
        "Glob patterns (matched against the relative path and the file name) never indexed "
        "or watched, on top of .gitignore.",
    ),
    Option(
        "codeintel.workers",
        0,
        "int",
        "Processes that parse files while indexing; 0 means one per CPU core.",
        minimum=0,
        maximum=64,
    ),
    Option(
        "codeintel.text_first_files",
        200,
        "int",
        "An index of more files than this is made searchable as text first (every file "
        "tokenized), then parsed into definitions; 0 always does it in one pass.",
        minimum=0,
        maximum=1 << 30,
    ),
    Option(
        "codeintel.watch",
        True,
        "bool",
        "Follow file changes in every workspace and re-index them as they happen.",
    ),
    Option(
        "codeintel.debounce",
        "50ms",
        "duration",
        "How long the watcher waits for a burst of changes to settle before indexing it.",
        minimum=0.005,
        maximum=10,
    ),
    Option(
        "codeintel.default_limit",
        20,
        "int",
        "Results per search when the client does not say.",
        minimum=1,
        maximum=1000,
    ),
    Option(
        "codeintel.bm25.k1",
        1.2,
        "float",
        "BM25 term-frequency saturation: higher lets repeated words count for longer.",
        minimum=0.0,
        maximum=10.0,
    ),
    Option(
        "codeintel.bm25.b",
        0.75,
        "float",
        "BM25 length normalization: 0 ignores chunk length, 1 normalizes fully.",
        minimum=0.0,
        maximum=1.0,
    ),
    Option(
        "codeintel.weights.name",
        5.0,
        "float",
        "Weight of the symbol's own name (split into words).",
        minimum=0.0,
        maximum=100.0,
    ),
    Option(
        "codeintel.weights.qualname",
        3.0,
        "float",
        "Weight of the qualified name (Class.method).",
        minimum=0.0,
        maximum=100.0,
    ),
    Option(
        "codeintel.weights.path",
        1.0,
        "float",
        "Weight of the file's path.",
        minimum=0.0,
        maximum=100.0,
    ),
    Option(
        "codeintel.weights.signature",
        2.0,
        "float",
        "Weight of the signature (def line, parameters).",
        minimum=0.0,
        maximum=100.0,
    ),
    Option(
        "codeintel.weights.doc",
        1.5,
        "float",
        "Weight of the doc comment or docstring.",
        minimum=0.0,
        maximum=100.0,
    ),
    Option(
        "codeintel.weights.body",
        1.0,
        "float",
        "Weight of the definition's own body text.",
        minimum=0.0,
        maximum=100.0,
    ),
    Option(
        "codeintel.cache.size",
        1024,
        "int",
        "Search results kept in the query cache (LRU); 0 turns the cache off.",
        minimum=0,
        maximum=1_000_000,
    ),
    Option(
        "codeintel.cache.ttl",
        "5m",
        "duration",
        "How long a cached search result may be served.",
        minimum=0,
        maximum=86400,
    ),
    Option(
        "plugins.enabled",
        True,
        "bool",
        "Run plugins at all. Individual plugins are enabled or disabled with "
        "`axctl plugin enable|disable NAME`.",
    ),
    Option(
        "plugins.builtin",
        True,
        "bool",
        "Load the plugins shipped in this checkout's plugins/ folder.",
    ),
    Option(
        "plugins.paths",
        ["~/.local/share/axd/plugins"],
        "list",
        "More folders holding plugins, one sub-folder with a plugin.toml each.",
    ),
    Option(
        "plugins.hot_reload",
        True,
        "bool",
        "Reload a plugin when a file in its folder changes (blue/green, with rollback).",
    ),
    Option(
        "plugins.reload_debounce",
        "50ms",
        "duration",
        "How long a plugin folder must be quiet after a save before the reload starts.",
        minimum=0.005,
        maximum=60,
    ),
    Option(
        "plugins.cgroup",
        "auto",
        "enum",
        "How budgets are enforced: auto picks cgroup v2 (delegated), else v1, else "
        "advisory (measures and warns only).",
        choices=("auto", "v2", "v1", "advisory"),
    ),
    Option(
        "plugins.budgets_file",
        "",
        "str",
        "Per-plugin budget overrides (TOML, one [name] table each); empty means "
        "$XDG_CONFIG_HOME/axd/budgets.toml.",
    ),
    Option(
        "plugins.call_timeout",
        "10s",
        "duration",
        "How long a plugin call may take unless the caller says otherwise.",
        minimum=0.001,
        maximum=3600,
    ),
    Option(
        "plugins.start_timeout",
        "10s",
        "duration",
        "How long a plugin may take from spawn to ready.",
        minimum=0.1,
        maximum=600,
    ),
    Option(
        "plugins.stop_grace",
        "3s",
        "duration",
        "On stop: wait this long after asking, and again after SIGTERM, before SIGKILL.",
        minimum=0,
        maximum=600,
    ),
    Option(
        "plugins.backoff_initial",
        "500ms",
        "duration",
        "First restart delay after a crash; doubles each crash up to backoff_max.",
        minimum=0,
        maximum=600,
    ),
    Option(
        "plugins.backoff_max", "30s", "duration", "Longest restart delay.", minimum=0, maximum=3600
    ),
    Option(
        "plugins.crash_loop_count",
        5,
        "int",
        "This many crashes within crash_loop_window put a plugin in `failed`.",
        minimum=1,
        maximum=1000,
    ),
    Option(
        "plugins.crash_loop_window",
        "60s",
        "duration",
        "The window of crash_loop_count.",
        minimum=1,
        maximum=86400,
    ),
    Option(
        "plugins.sample_interval",
        "1s",
        "duration",
        "How often CPU, memory and throttling of each plugin are sampled.",
        minimum=0.05,
        maximum=3600,
    ),
    Option(
        "plugins.log_rate",
        500,
        "int",
        "Lines a plugin may leave per second on each of its outputs (stdout, stderr, log "
        "records: a flood on one never starves the others), in bursts of up to two seconds' "
        "worth; the rest are dropped and counted (a plugin.logs_dropped event at most once a "
        "second).",
        minimum=1,
        maximum=1_000_000,
    ),
    Option(
        "telemetry.enabled",
        False,
        "bool",
        "Export traces, metrics and events over OTLP/HTTP. Also on when an "
        "OTEL_EXPORTER_OTLP_*ENDPOINT variable is set; OTEL_SDK_DISABLED=true wins.",
    ),
    Option(
        "telemetry.endpoint",
        "",
        "str",
        "OTLP/HTTP base URL (/v1/traces, /v1/metrics, /v1/logs are appended); empty means "
        "OTEL_EXPORTER_OTLP_ENDPOINT, else http://127.0.0.1:4318.",
    ),
    Option(
        "telemetry.headers", [], "list", "Extra request headers for the collector, as key=value."
    ),
    Option("telemetry.service_name", "axd", "str", "service.name of everything exported."),
    Option(
        "telemetry.export_interval",
        "5s",
        "duration",
        "How often spans, logs and metrics are pushed.",
        minimum=0.1,
        maximum=3600,
    ),
    Option(
        "telemetry.timeout",
        "5s",
        "duration",
        "Per-export timeout; exports run off the request path.",
        minimum=0.1,
        maximum=300,
    ),
    Option(
        "telemetry.queue_size",
        2048,
        "int",
        "Spans (and log records) buffered while the collector is slow; more are dropped "
        "and counted.",
        minimum=16,
        maximum=1_000_000,
    ),
    Option(
        "budget.cpu",
        1.0,
        "float",
        "Default CPU budget of a plugin, in cores.",
        minimum=0.01,
        maximum=1024,
    ),
    Option(
        "budget.memory",
        "512MiB",
        "size",
        "Default hard memory limit of a plugin (OOM kill past it).",
        minimum=8 << 20,
        maximum=1 << 40,
    ),
    Option(
        "budget.memory_high",
        "448MiB",
        "size",
        "Default memory throttle point (cgroup v2 memory.high; a soft limit on v1).",
        minimum=8 << 20,
        maximum=1 << 40,
    ),
    Option(
        "budget.pids",
        64,
        "int",
        "Default limit of processes and threads per plugin.",
        minimum=2,
        maximum=1 << 22,
    ),
    Option(
        "budget.warn_fraction",
        0.8,
        "float",
        "budget.warning when memory passes this fraction of the limit.",
        minimum=0.1,
        maximum=1.0,
    ),
    Option(
        "budget.throttle_warn",
        0.25,
        "float",
        "budget.warning when more than this fraction of CPU periods were throttled "
        "over budget.window; budget.exceeded when it stays so for two windows.",
        minimum=0.01,
        maximum=1.0,
    ),
    Option(
        "budget.window",
        "10s",
        "duration",
        "The window over which throttling is judged.",
        minimum=0.1,
        maximum=3600,
    ),
    Option(
        "monitoring.interval",
        "1s",
        "duration",
        "How often the golden signals are sampled (the dashboard's and the alerts' clock).",
        minimum=0.05,
        maximum=60,
    ),
    Option(
        "monitoring.window",
        "1m",
        "duration",
        "The span search and API rates and percentiles are taken over.",
        minimum=0.5,
        maximum=3600,
    ),
    Option("alerts.enabled", True, "bool", "Evaluate the alert rules."),
    Option(
        "alerts.file",
        "",
        "str",
        "The alert rules (TOML, [[rule]] tables; config/alerts.toml documents the "
        "defaults); empty means $XDG_CONFIG_HOME/axd/alerts.toml, else the defaults.",
    ),
    Option(
        "alerts.webhook",
        "",
        "str",
        "A URL that gets each firing and resolved alert as a JSON POST (retried with "
        "backoff, dropped after the retries); empty means none.",
    ),
    Option(
        "alerts.webhook_timeout",
        "5s",
        "duration",
        "How long one webhook POST may take.",
        minimum=0.1,
        maximum=60,
    ),
    Option(
        "alerts.desktop",
        True,
        "bool",
        "Show firing and resolved alerts as desktop notifications (notify-send, where it exists).",
    ),
    Option(
        "dashboard.port",
        0,
        "int",
        "The dashboard's port on 127.0.0.1 when `axctl dashboard` asks for none; 0 picks "
        "a free one.",
        minimum=0,
        maximum=65535,
    ),
    Option(
        "dashboard.idle_timeout",
        "15m",
        "duration",
        "The dashboard listener closes after this long without a request or an open page.",
        minimum=1,
        maximum=86400,
    ),
    Option(
        "dashboard.metrics_token_file",
        "",
        "str",
        "A file holding the bearer token Prometheus sends to the dashboard's /metrics; "
        "empty means <state dir>/metrics.token (created 0600 on first use).",
    ),
    Option(
        "tutorials.abandon_after",
        "30m",
        "duration",
        "A tutorial with no step passed for this long counts as abandoned in the funnel "
        "(`axctl tutorial stats`) until its user comes back.",
        minimum=0.001,
        maximum=30 * 86400,
    ),
    Option(
        "marketplace.sources",
        [],
        "list",
        'Plugin catalogs you trust, each "LOCATION PUBLIC_KEY": an https:// URL or a path '
        "to a catalog.json, and the base64 Ed25519 key its catalog.json.sig must verify "
        "with (`axctl plugin catalog keygen` prints it). A catalog no listed key signed is "
        "refused whole.",
    ),
    Option(
        "marketplace.fetch_timeout",
        "30s",
        "duration",
        "A catalog or archive download that sends nothing for this long is given up.",
        minimum=0.1,
        maximum=3600,
    ),
    Option(
        "marketplace.max_cpu",
        2.0,
        "float",
        "The most CPU (cores) a plugin installed from a catalog may ask for in its "
        "manifest; one asking more is refused (the budgets file can still grant more).",
        minimum=0.01,
        maximum=1024,
    ),
    Option(
        "marketplace.max_memory",
        "1GiB",
        "size",
        "The most memory an installed plugin's manifest may ask for (memory and memory_high).",
        minimum=8 << 20,
        maximum=1 << 40,
    ),
    Option(
        "marketplace.max_pids",
        256,
        "int",
        "The most processes and threads an installed plugin's manifest may ask for.",
        minimum=2,
        maximum=1 << 22,
    ),
    Option(
        "marketplace.cache_ttl",
        "5m",
        "duration",
        "How long a catalog fetched over https is reused before it is fetched and "
        "verified again (a catalog on disk is read every time).",
        minimum=0,
        maximum=86400,
    ),
)

BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(o.key.split(".")[0] for o in OPTIONS))


@dataclass(frozen=True)
class Problem:
    """One invalid setting, phrased so the user can fix it without reading code."""

    key: str
    value: Any
    allowed: str
    source: str

    def sentence(self) -> str:
        where = f" (in {self.source})" if self.source else ""
        return f"{self.key} = {_clip(repr(self.value))}{where}: {self.allowed}"

    def as_dict(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, str):
            value = _clip(value, 200)
        return {
            "key": self.key,
            "value": _jsonable(value),
            "allowed": self.allowed,
            "source": self.source,
        }


class ConfigError(AxdError):
    """Raised with every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "; ".join(p.sentence() for p in problems[:MAX_PROBLEMS_IN_MESSAGE])
        more = len(problems) - MAX_PROBLEMS_IN_MESSAGE
        if more > 0:
            shown += f"; and {more} more problems"
        super().__init__(
            Kind.INVALID,
            "config_invalid",
            f"invalid config: {shown}",
            problems=[p.as_dict() for p in problems],
        )


class TypedSettings:
    """Typed reads of validated settings: `cfg.number("plugins.call_timeout")` is a float,
    checked against the key's kind, so callers need no casts. Durations are seconds and
    sizes bytes (the schema converted them when it validated the file)."""

    def __getitem__(self, key: str) -> Any:
        raise NotImplementedError

    def _typed(self, key: str, kinds: tuple[str, ...]) -> Any:
        kind = BY_KEY[key].kind
        if kind not in kinds:
            raise TypeError(f"{key} is a {kind} setting, not one of {', '.join(kinds)}")
        return self[key]

    def integer(self, key: str) -> int:
        """An `int` or `size` setting."""
        return int(self._typed(key, ("int", "size")))

    def number(self, key: str) -> float:
        """A `float`, `int` or `duration` (seconds) setting."""
        return float(self._typed(key, ("float", "int", "duration")))

    def text(self, key: str) -> str:
        """A `str` or `enum` setting."""
        return str(self._typed(key, ("str", "enum")))

    def flag(self, key: str) -> bool:
        return bool(self._typed(key, ("bool",)))

    def strings(self, key: str) -> list[str]:
        """A `list` setting (of strings)."""
        return [str(item) for item in self._typed(key, ("list",))]


@dataclass(frozen=True)
class Config(TypedSettings):
    """An immutable, validated snapshot of every setting and where each came from."""

    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def changed_keys(self, other: Config) -> list[str]:
        return sorted(k for k in self.values if self.values[k] != other.values.get(k))

    def display(self, key: str) -> Any:
        """The value as a user would write it (sizes and durations with their units)."""
        kind = BY_KEY[key].kind
        value = self.values[key]
        if kind == "size":
            return format_size(value)
        if kind == "duration":
            return format_duration(value)
        return value


def defaults() -> Config:
    values = {o.key: _coerce(o, o.default) for o in OPTIONS}
    return Config(values, dict.fromkeys(values, "default"))


def load(
    user_file: str | None,
    env: Mapping[str, str] | None = None,
    user_file_required: bool = False,
) -> Config:
    """Build the config in force: defaults, then `user_file` if it exists, then `env`."""
    env = os.environ if env is None else env
    values = dict(defaults().values)
    sources = dict.fromkeys(values, "default")
    problems: list[Problem] = []
    files: list[str] = []
    if user_file and (user_file_required or os.path.exists(user_file)):
        text = _read(user_file, problems)
        if text is not None:
            files.append(user_file)
            _apply(parse_toml(text, user_file, problems), user_file, values, sources, problems)
    _apply_env(env, values, sources, problems)
    if problems:
        raise ConfigError(problems)
    return Config(values, sources, tuple(files))


def validate_text(text: str, name: str) -> list[Problem]:
    """Check one TOML document on its own (used by `axctl config validate FILE`)."""
    problems: list[Problem] = []
    values = dict(defaults().values)
    _apply(parse_toml(text, name, problems), name, values, {}, problems)
    return problems


def parse_cli_value(key: str, raw: str) -> Any:
    """`1.1` -> 1.1, `true` -> True, `[".git"]` -> list, anything else -> the string;
    then checked against the key's rules."""
    opt = BY_KEY.get(key)
    if opt is None:
        raise ConfigError([Problem(key, raw, _unknown_key_hint(key), "axctl config set")])
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except (ValueError, RecursionError):  # not TOML; `[[[[...` nests past the stack
        value = raw
    if opt.kind in ("str", "enum") and not isinstance(value, str):
        value = raw  # `axctl config set daemon.log_level 1` is the string "1"
    try:
        _coerce(opt, value)
    except ValueError as exc:
        raise ConfigError([Problem(key, raw, str(exc), "axctl config set")]) from None
    return value


def with_key(text: str, key: str, value: Any) -> str:
    """`text` (a TOML document) with `key` set to `value`, comments and order kept."""
    import tomlkit

    doc = tomlkit.parse(text)
    *tables, leaf = key.split(".")
    node: Any = doc
    for name in tables:
        if name not in node:
            node[name] = tomlkit.table()
        node = node[name]
    node[leaf] = value
    out = tomlkit.dumps(doc)
    return out if out.endswith("\n") else out + "\n"


def parse_toml(text: str, name: str, problems: list[Problem]) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer of over 4300 digits
        problems.append(Problem("(file)", None, f"not valid TOML: {exc}", name))
    except RecursionError:  # tomllib recurses per nested array or inline table
        problems.append(Problem("(file)", None, "not valid TOML: nested too deeply", name))
    return {}


def render_defaults() -> str:
    """The documented default file, `config/axd.toml`."""
    out = [
        "# axd configuration: every key, with its default and what it does.",
        "#",
        "# This file documents the defaults built into axd; it is not read by the daemon.",
        "# Put the keys you change in $XDG_CONFIG_HOME/axd/axd.toml (or the file named by",
        "# AXD_CONFIG). Environment variables AXD_<SECTION>_<KEY> override both, e.g.",
        "# AXD_DAEMON_LOG_LEVEL=debug. Sizes take B, KiB, MiB, GiB; durations ms, s, m, h.",
        "# Check a file with `axctl config validate FILE`; apply it with `axctl config reload`",
        "# or SIGHUP.",
    ]
    section = None
    for opt in OPTIONS:
        head, _, leaf = opt.key.rpartition(".")
        if head != section:
            out += ["", f"[{head}]"]
            section = head
        out += textwrap.wrap(opt.doc, 88, initial_indent="# ", subsequent_indent="# ")
        rule = _describe(opt)
        if rule:
            out.append(f"# Allowed: {rule}.")
        out.append(f"{leaf} = {_toml_literal(opt.default)}")
    return "\n".join(out) + "\n"


def _read(path: str, problems: list[Problem]) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem("(file)", None, f"cannot be read: {exc}", path))
        return None


def _apply(
    doc: Mapping[str, Any],
    source: str,
    values: dict[str, Any],
    sources: dict[str, str],
    problems: list[Problem],
) -> None:
    for key, raw in _flatten(doc):
        opt = BY_KEY.get(key)
        if opt is None:
            problems.append(Problem(key, raw, _unknown_key_hint(key), source))
            continue
        try:
            values[key] = _coerce(opt, raw)
            sources[key] = source
        except ValueError as exc:
            problems.append(Problem(key, raw, str(exc), source))


def _apply_env(
    env: Mapping[str, str],
    values: dict[str, Any],
    sources: dict[str, str],
    problems: list[Problem],
) -> None:
    by_env = {o.env_name: o for o in OPTIONS}
    section_prefixes = tuple(f"{ENV_PREFIX}{s.upper()}_" for s in SECTIONS)
    for name in sorted(env):
        if not name.startswith(section_prefixes):
            continue
        raw = env[name]
        opt = by_env.get(name)
        if opt is None:
            near = difflib.get_close_matches(name, list(by_env), n=1)
            hint = f"did you mean {near[0]}?" if near else "not a known setting"
            problems.append(Problem(name, raw, f"unknown variable; {hint}", "environment"))
            continue
        try:
            values[opt.key] = _coerce(opt, _from_env(opt, raw))
            sources[opt.key] = f"env {name}"
        except ValueError as exc:
            problems.append(Problem(opt.key, raw, str(exc), f"env {name}"))


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for name, value in doc.items():
        key = f"{prefix}{name}"
        if key not in BY_KEY and isinstance(value, dict):
            yield from _flatten(value, key + ".")
        else:
            yield key, value


def _unknown_key_hint(key: str) -> str:
    near = difflib.get_close_matches(key, list(BY_KEY), n=1)
    if near:
        return f"unknown key; did you mean {near[0]}?"
    return "unknown key; known sections: " + ", ".join(SECTIONS)


def _from_env(opt: Option, raw: str) -> Any:
    """Environment values are strings; turn them into what TOML would have given."""
    text = raw.strip()
    if opt.kind == "bool":
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError("must be true or false")
    if opt.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"must be a whole number{_range(opt)}") from None
    if opt.kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"must be a number{_range(opt)}") from None
    return text


_CHECKS: dict[str, Callable[[Option, Any], Any]] = {}


def _coerce(opt: Option, raw: Any) -> Any:
    """Parse and range-check one value; ValueError says what is allowed."""
    return _CHECKS[opt.kind](opt, raw)


def _check_str(opt: Option, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("must be a string")
    if "\0" in raw:  # TOML allows "\u0000"; as a path it raises ValueError in every os call
        raise ValueError("must not contain a NUL character")
    return raw


def _check_enum(opt: Option, raw: Any) -> str:
    if not isinstance(raw, str) or raw.lower() not in opt.choices:
        raise ValueError("must be one of " + ", ".join(opt.choices))
    return raw.lower()


def _check_list(opt: Option, raw: Any) -> list[str]:
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ValueError("must be a list of strings")
    if any("\0" in x for x in raw):
        raise ValueError("must not contain a NUL character")
    return list(raw)


def _check_bool(opt: Option, raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ValueError("must be true or false")
    return raw


def _check_int(opt: Option, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(f"must be a whole number{_range(opt)}")
    return _in_range(opt, raw)


def _check_float(opt: Option, raw: Any) -> float:
    # nan would pass the range check (every comparison with it is false) and reach BM25.
    if isinstance(raw, bool) or not isinstance(raw, int | float) or _non_finite(raw):
        raise ValueError(f"must be a number{_range(opt)}")
    value = _in_range(opt, raw)
    try:
        return float(value)
    except OverflowError:  # an integer past float range, where no maximum caught it
        raise ValueError(f"must be a number{_range(opt)}") from None


def _check_size(opt: Option, raw: Any) -> int:
    try:
        value = parse_size(raw)
    except UnitError as exc:
        raise ValueError(f"{exc}{_range(opt)}") from None
    return _in_range(opt, value)


def _check_duration(opt: Option, raw: Any) -> float:
    try:
        value = parse_duration(raw)
    except UnitError as exc:
        raise ValueError(f"{exc}{_range(opt)}") from None
    return _in_range(opt, value)


def _non_finite(raw: float) -> bool:
    return isinstance(raw, float) and not math.isfinite(raw)


_CHECKS.update(
    str=_check_str,
    enum=_check_enum,
    bool=_check_bool,
    list=_check_list,
    int=_check_int,
    float=_check_float,
    size=_check_size,
    duration=_check_duration,
)


def _in_range(opt: Option, value: Any) -> Any:
    if opt.minimum is not None and value < opt.minimum:
        raise ValueError(f"must be at least {_bound(opt, opt.minimum)}")
    if opt.maximum is not None and value > opt.maximum:
        raise ValueError(f"must be at most {_bound(opt, opt.maximum)}")
    return value


def _bound(opt: Option, value: float) -> str:
    if opt.kind == "size":
        return format_size(int(value))
    if opt.kind == "duration":
        return format_duration(value)
    return str(value)


def _range(opt: Option) -> str:
    parts = []
    if opt.minimum is not None:
        parts.append(f">= {_bound(opt, opt.minimum)}")
    if opt.maximum is not None:
        parts.append(f"<= {_bound(opt, opt.maximum)}")
    return f" ({', '.join(parts)})" if parts else ""


def _describe(opt: Option) -> str:
    if opt.kind == "enum":
        return "one of " + ", ".join(opt.choices)
    kinds = {
        "size": "a size such as 512KiB or 1MiB",
        "duration": "a duration such as 250ms, 5s or 2m",
        "int": "a whole number",
        "float": "a number",
        "bool": "true or false",
        "str": "a string",
        "list": "a list of strings (in the environment: comma-separated)",
    }
    return kinds[opt.kind] + _range(opt)


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    return repr(value)


def _clip(text: str, limit: int = 80) -> str:
    """Long values (a pasted blob) stay readable in one-line messages."""
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} chars)"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
        return value
    return repr(value)

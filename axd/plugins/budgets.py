"""Plugin budgets: CPU cores, memory (hard limit and throttle point), pids.

Values are written as people write them: `cpu = 0.5` or `"50%"` (of one core), `memory =
"512MiB"`, `pids = 64`. A plugin's budget is the config default, overridden by its manifest,
overridden by the budgets file. Every problem names the file and the key.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, fields, replace
from typing import Any

from axd.config.schema import TypedSettings
from axd.config.units import UnitError, format_size, parse_size

MIN_MEMORY = 8 << 20
MAX_PIDS = 1 << 22
KEYS = ("cpu", "memory", "memory_high", "pids")


@dataclass(frozen=True)
class Budget:
    cpu: float | None = None  # cores
    memory: int | None = None  # bytes, hard limit
    memory_high: int | None = None  # bytes, throttle point
    pids: int | None = None

    def merged(self, over: Budget) -> Budget:
        return replace(
            self,
            **{
                f.name: getattr(over, f.name)
                for f in fields(over)
                if getattr(over, f.name) is not None
            },
        )

    def describe(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu,
            "memory": format_size(self.memory) if self.memory else None,
            "memory_high": format_size(self.memory_high) if self.memory_high else None,
            "pids": self.pids,
        }


class BudgetError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_budget(table: dict[str, Any], where: str) -> tuple[Budget, list[str]]:
    """A Budget from a TOML table; problems are `where.key = value: rule` sentences."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in KEYS:
            problems.append(f"{where}.{key}: unknown budget key; known: {', '.join(KEYS)}")
            continue
        try:
            values[key] = _PARSERS[key](raw)
        except ValueError as exc:
            problems.append(f"{where}.{key} = {raw!r}: {exc}")
    budget = Budget(**values)
    problems += [f"{where}: {p}" for p in impossible(budget)]
    return budget, problems


def impossible(budget: Budget) -> list[str]:
    problems = []
    if (
        budget.memory is not None
        and budget.memory_high is not None
        and budget.memory_high > budget.memory
    ):
        problems.append(
            f"memory_high ({format_size(budget.memory_high)}) is above memory "
            f"({format_size(budget.memory)}); the hard limit would never be reached "
            "gently"
        )
    return problems


def parse_cpu(raw: Any) -> float:
    cores = os.cpu_count() or 1
    if isinstance(raw, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", raw)
        if match:
            value = float(match.group(1)) / 100
        else:
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(
                    'must be cores (0.5) or a percentage of one core ("50%")'
                ) from None
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            value = float(raw)
        except OverflowError:  # an integer past float range: far above any core count
            value = math.inf
    else:
        raise ValueError('must be cores (0.5) or a percentage of one core ("50%")')
    if math.isnan(value):  # "nan" and TOML nan pass float() and every range check
        raise ValueError('must be cores (0.5) or a percentage of one core ("50%")')
    if value < 0.01:
        raise ValueError("must be at least 0.01 cores (1%)")
    if value > cores:
        raise ValueError(f"must be at most {cores} cores, the machine's count")
    return value


def parse_memory(raw: Any) -> int:
    try:
        value = parse_size(raw)
    except UnitError as exc:
        raise ValueError(str(exc)) from None
    if value < MIN_MEMORY:
        raise ValueError(
            f"must be at least {format_size(MIN_MEMORY)} (a Python process "
            "needs that much to start)"
        )
    return value


def parse_pids(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError("must be a whole number of processes and threads")
    if raw < 2:
        raise ValueError("must be at least 2 (the plugin and its channel thread)")
    if raw > MAX_PIDS:  # pids.max refuses more, so the plugin would fail to start
        raise ValueError(f"must be at most {MAX_PIDS} (the kernel's PID_MAX_LIMIT)")
    return raw


_PARSERS = {
    "cpu": parse_cpu,
    "memory": parse_memory,
    "memory_high": parse_memory,
    "pids": parse_pids,
}


def load_overrides(path: str, known: set[str] | None) -> tuple[dict[str, Budget], list[str]]:
    """Per-plugin overrides from a budgets file: `[plugin-name]` tables of budget keys."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        return {}, []
    except UnicodeDecodeError:  # tomllib.load decodes the bytes before it parses
        return {}, [f"{path}: not valid TOML: the file is not UTF-8 text"]
    except (OSError, ValueError) as exc:  # ValueError: TOMLDecodeError, a 4300-digit integer
        return {}, [f"{path}: {exc}"]
    except RecursionError:
        return {}, [f"{path}: not valid TOML: nested too deeply"]
    overrides: dict[str, Budget] = {}
    problems: list[str] = []
    for name, table in doc.items():
        if not isinstance(table, dict):
            problems.append(f"{path}: {name} = {table!r}: expected a [{name}] table of budget keys")
            continue
        if known is not None and name not in known:
            problems.append(
                f"{path}: [{name}]: no such plugin; known: " + (", ".join(sorted(known)) or "none")
            )
            continue
        budget, found = parse_budget(table, f"{path}: {name}")
        problems += found
        overrides[name] = budget
    return overrides, problems


def defaults(config: TypedSettings) -> Budget:
    """The `[budget]` section of the config: what a plugin gets unless it asks."""
    return Budget(
        cpu=config.number("budget.cpu"),
        memory=config.integer("budget.memory"),
        memory_high=config.integer("budget.memory_high"),
        pids=config.integer("budget.pids"),
    )


def resolve(base: Budget, manifest: Budget, override: Budget) -> Budget:
    """Config default < manifest < budgets file; a throttle point above the hard limit
    is lowered to it (the kernel would refuse it)."""
    budget = base.merged(manifest).merged(override)
    if budget.memory_high and budget.memory and budget.memory_high > budget.memory:
        budget = Budget(budget.cpu, budget.memory, budget.memory, budget.pids)
    return budget


def for_startup(budget: Budget) -> Budget:
    """Until `ready`, a plugin may use at least one core: imports under a 0.2-core quota
    would take four times as long. Memory and pids limits hold from the first instruction;
    `plugins.start_timeout` bounds the boost."""
    if budget.cpu is None or budget.cpu >= 1.0:
        return budget
    return replace(budget, cpu=1.0)


def file_path(config: TypedSettings) -> str:
    """The budgets file: `plugins.budgets_file`, else `$XDG_CONFIG_HOME/axd/budgets.toml`."""
    configured = config.text("plugins.budgets_file")
    if configured:
        return os.path.expanduser(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "axd", "budgets.toml")

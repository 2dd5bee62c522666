"""CLI start-up benchmark: wall time of `axctl status --json` and `axctl find WORD --json`
against a warm daemon.

Two references are measured in the same run, interleaved with axctl (the order is rotated
each round so that no command always runs first or last):

- `python -I -c pass`: the interpreter's own start-up floor;
- `python -c "import click, json, socket"`: the floor for a click client that talks JSON
  over a socket (what axctl paid before its click-free hot path, axctl/fast.py).

`axctl find WORD --json` runs from the root of corpus A (bench/corpus.py), which the daemon
has indexed (from the index snapshot, see bench/README.md), as a user runs it inside a
workspace. It is the same query every time, so after the warm-up the daemon answers it
from its query cache: the figure is the client's start-up plus a cached search and
printing its JSON. `--find-word ''` leaves it out (and the daemon without a workspace).

Every figure is the wall time of `subprocess.run` around the command, so the fork/exec cost
is included equally in all of them. The script starts its own daemon on a private socket
and state dir, and stops it and removes them at the end.

Run: `.venv/bin/python bench/cli_startup.py [--runs 60] [--warmup 5] [--find-word WORD]
[--json] [--check]`. `--smoke` (5 runs, 1 warm-up, targets not checked) is for CI.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from typing import Any

import benchlib
import corpus
from benchlib import Daemon, figure, guarded, interleave, notifier, time_command

from axd.perf.stats import distribution

# Targets from the issue.
TARGET_P95_MS = 50.0
TARGET_MEDIAN_RATIO = 1.3  # issue 2: over `import click, json, socket`
TARGET_BARE_RATIO = 2.0  # issue 11: over a bare `python -I -c pass`

AXCTL = "axctl status --json"
FIND_WORD = "terminal"
PASS = "python -I -c pass"
IMPORTS = "import click,json,socket"

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
note = notifier("cli_startup")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__, corpus=False)
    parser.add_argument("--runs", type=int, default=60, help="measured runs per command")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured runs per command")
    parser.add_argument(
        "--find-word",
        default=FIND_WORD,
        help=f"also time `axctl find WORD --json` in corpus A (default {FIND_WORD}; '' skips)",
    )
    args = benchlib.parse(
        parser,
        argv,
        smoke={"runs": 5, "warmup": 1},
        smoke_help="runs=5, warmup=1, targets not checked (CI smoke test)",
    )
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    return args


# -- machine -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        **benchlib.machine(),
        "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE"),
    }


# -- bytecode ------------------------------------------------------------------------------


def cli_pyc_present() -> bool:
    tag = sys.implementation.cache_tag
    cache = os.path.join(REPO, "axctl", "__pycache__")
    return os.path.isfile(os.path.join(cache, f"cli.{tag}.pyc"))


def ensure_bytecode() -> dict[str, Any]:
    """What the setup step must do: with PYTHONDONTWRITEBYTECODE=1 Python never writes .pyc
    files itself, so every start would compile axctl and its imports from source."""
    before = cli_pyc_present()
    if not before:
        note(
            "warning: axctl/__pycache__ has no compiled cli module; every axctl start "
            "recompiles from source (PYTHONDONTWRITEBYTECODE is set). The setup step must "
            "run `python -m compileall` on axd, axctl and the venv's site-packages."
        )
    code = benchlib.compile_sources()
    note(f"ran `python -m compileall -q` on axd, axctl and site-packages (exit {code})")
    after = cli_pyc_present()
    if not after:
        note("warning: still no .pyc for axctl/cli.py after compileall; figures are pessimistic")
    return {"cli_pyc_before": before, "cli_pyc_after": after, "compileall_exit": code}


# -- measurement ---------------------------------------------------------------------------


def find_name(word: str) -> str:
    return f"axctl find {word} --json"


def measure(
    daemon: Daemon, runs: int, warmup: int, find: tuple[str, str] | None
) -> tuple[dict[str, list[str]], dict[str, list[float]]]:
    """The commands against the running daemon, interleaved; their samples (ms). `find`:
    the word and the workspace root `axctl find` runs in, or None."""
    commands = {
        AXCTL: [daemon.axctl, "status", "--json"],
        PASS: [daemon.python, "-I", "-c", "pass"],
        IMPORTS: [daemon.python, "-c", "import click, json, socket"],
    }
    cwd: dict[str, str] = {}
    if find is not None:
        word, root = find
        commands[find_name(word)] = [daemon.axctl, "find", word, "--json"]
        cwd[find_name(word)] = root
        doc = json.loads(benchlib.run_checked(commands[find_name(word)], cwd=root, env=daemon.env))
        if not doc.get("results"):
            raise benchlib.BenchError(f"`axctl find {word}` found nothing in {root}: {doc}")
        daemon.settle()
    doc = json.loads(daemon.run("status", "--json"))
    if not doc.get("running"):
        raise benchlib.BenchError(f"{AXCTL} does not report a running daemon: {doc}")
    note(
        f"daemon pid {doc.get('pid')} on {daemon.socket}; "
        f"{warmup} warm-up and {runs} measured runs per command"
    )
    kinds = {
        name: functools.partial(time_command, cmd, daemon.env, cwd.get(name))
        for name, cmd in commands.items()
    }
    return commands, interleave(kinds, runs, warmup)


# -- report --------------------------------------------------------------------------------


def figure_lines(stats: dict[str, dict[str, Any]], targets: dict[str, Any] | None) -> list[str]:
    ax, imp, floor = stats[AXCTL], stats[IMPORTS], stats[PASS]
    lines = []
    for key in ("p50", "p95", "p99", "mean"):
        lines.append(
            f"{AXCTL} {key}: {ax[key]:.1f} ms (reference {IMPORTS} {key}: "
            f"{imp[key]:.1f} ms, ratio: {ax[key] / imp[key]:.2f}x)"
        )
    for key in ("p50", "p95", "p99", "mean"):
        lines.append(
            f"{IMPORTS} {key}: {imp[key]:.1f} ms (reference {PASS} {key}: "
            f"{floor[key]:.1f} ms, ratio: {imp[key] / floor[key]:.2f}x)"
        )
    lines.append(
        f"{PASS} p50: {floor['p50']:.1f} ms (p95: {floor['p95']:.1f} ms, "
        f"p99: {floor['p99']:.1f} ms, mean: {floor['mean']:.1f} ms)"
    )
    lines.append(
        f"{AXCTL} p50 over {IMPORTS}: {ax['p50'] - imp['p50']:+.1f} ms "
        f"(reference {PASS} p50: {floor['p50']:.1f} ms, "
        f"ratio axctl/pass: {ax['p50'] / floor['p50']:.2f}x)"
    )
    for name in [n for n in stats if n not in (AXCTL, IMPORTS, PASS)] + [AXCTL]:
        for key in ("p50", "p95", "p99", "mean"):
            lines.append(
                figure(f"{name} {key}", stats[name][key], "ms", f"{PASS} {key}", floor[key], 1)
            )
    if targets is None:
        lines.append("targets: not checked (--smoke)")
    else:
        p95, med = targets["p95"], targets["median_ratio"]
        lines.append(
            f"{AXCTL} p95: {p95['value']:.1f} ms (target: <= {p95['target']:.1f} ms, "
            f"ratio: {p95['value'] / p95['target']:.2f}x): "
            f"{'met' if p95['met'] else 'MISSED'}"
        )
        lines.append(
            f"{AXCTL} p50 / {IMPORTS} p50: {med['value']:.2f}x "
            f"(target: <= {med['target']:.2f}x): {'met' if med['met'] else 'MISSED'}"
        )
        bare = targets["bare_ratio"]
        lines.append(
            f"{AXCTL} p50 / {PASS} p50: {bare['value']:.2f}x "
            f"(target: <= {bare['target']:.2f}x): {'met' if bare['met'] else 'MISSED'}"
        )
    return lines


def check_targets(stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    p95 = stats[AXCTL]["p95"]
    ratio = stats[AXCTL]["p50"] / stats[IMPORTS]["p50"]
    bare = stats[AXCTL]["p50"] / stats[PASS]["p50"]
    return {
        "p95": {"value": p95, "target": TARGET_P95_MS, "met": p95 <= TARGET_P95_MS},
        "median_ratio": {
            "value": ratio,
            "target": TARGET_MEDIAN_RATIO,
            "met": ratio <= TARGET_MEDIAN_RATIO,
        },
        "bare_ratio": {
            "value": bare,
            "target": TARGET_BARE_RATIO,
            "met": bare <= TARGET_BARE_RATIO,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    bytecode = ensure_bytecode()
    with guarded(note), contextlib.ExitStack() as stack:
        find = None
        if args.find_word:
            daemon, how = stack.enter_context(corpus.indexed(note, "a"))
            find = (args.find_word, how["root"])
        else:
            daemon = stack.enter_context(Daemon(note))
            daemon.start()
        commands, samples = measure(daemon, args.runs, args.warmup, find)
        daemon.stop()
        note("daemon stopped")

    stats = {name: distribution(values, digits=3) for name, values in samples.items()}
    targets = None if args.smoke else check_targets(stats)
    missed = targets is not None and not all(t["met"] for t in targets.values())
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "cli_startup",
                    "machine": info,
                    "bytecode": bytecode,
                    "runs": args.runs,
                    "warmup": args.warmup,
                    "order": "rotated each round",
                    "commands": {name: cmd for name, cmd in commands.items()},
                    "find_cwd": find[1] if find else None,
                    "results_ms": stats,
                    "targets": targets,
                },
                indent=2,
            )
        )
    else:
        print(
            f"machine: {info['cpu']}, {info['cores_usable']}/{info['cores']} cores, "
            f"{info['memory_gib']} GiB, {info['python']}, {info['os']}, {info['date_utc']}, "
            f"load {info['load_avg']}, commit {info['commit']}"
            f"{', dirty' if info['worktree_dirty'] else ''}"
        )
        print(f"runs: {args.runs} per command, warm-up: {args.warmup}, order rotated each round")
        print("\n".join(figure_lines(stats, targets)))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())

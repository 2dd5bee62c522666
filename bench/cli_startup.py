"""CLI start-up benchmark: wall time of `axctl status --json` against a warm daemon.

Two references are measured in the same run, interleaved with axctl (the order is rotated
each round so that no command always runs first or last):

- `python -I -c pass`: the interpreter's own start-up floor;
- `python -c "import click, json, socket"`: the floor for a click client that talks JSON
  over a socket, i.e. what axctl cannot avoid paying.

Every figure is the wall time of `subprocess.run` around the command, so the fork/exec cost
is included equally in all three. The script starts its own daemon on a private socket and
state dir, and stops it and removes them at the end.

Run: `.venv/bin/python bench/cli_startup.py [--runs 60] [--warmup 5] [--json] [--check]`.
`--smoke` (5 runs, 1 warm-up, targets not checked) is for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import benchlib

# Targets from the issue.
TARGET_P95_MS = 50.0
TARGET_MEDIAN_RATIO = 1.3

AXCTL = "axctl status --json"
PASS = "python -I -c pass"
IMPORTS = "import click,json,socket"

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def note(message: str) -> None:
    """Progress and warnings go to stderr, so that `--json` output stays parseable."""
    print(f"cli_startup: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=60, help="measured runs per command")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured runs per command")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--smoke", action="store_true", help="runs=5, warmup=1, targets not checked (CI smoke test)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.warmup = 5, 1
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


# -- daemon --------------------------------------------------------------------------------


def private_env(tmp: str) -> dict[str, str]:
    run_dir = os.path.join(tmp, "run")
    os.mkdir(run_dir, 0o700)
    os.chmod(run_dir, 0o700)  # in case the umask removed bits we want (it cannot add any)
    return dict(
        os.environ,
        AXD_SOCKET=os.path.join(run_dir, "axd.sock"),
        AXD_STATE_DIR=os.path.join(tmp, "state"),
        XDG_CONFIG_HOME=os.path.join(tmp, "config"),
    )


def run_checked(cmd: list[str], env: dict[str, str], what: str) -> str:
    proc = subprocess.run(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}".strip()
        )
    return proc.stdout


def stop_daemon(axctl: str, env: dict[str, str]) -> None:
    try:
        run_checked([axctl, "stop", "--timeout", "30"], env, "axctl stop")
        note("daemon stopped")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        note(f"warning: {exc}")
        lock = env["AXD_SOCKET"] + ".lock"
        try:
            with open(lock, encoding="utf-8") as fh:
                pid = int(fh.read().strip())
            os.kill(pid, 15)
            note(f"sent SIGTERM to the bench daemon (pid {pid})")
        except (OSError, ValueError):
            pass


# -- measurement ---------------------------------------------------------------------------


def time_once(cmd: list[str], env: dict[str, str]) -> float:
    """Milliseconds of wall time for one run; the command must succeed."""
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    elapsed = (time.perf_counter() - start) * 1000.0
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode} during the benchmark")
    return elapsed


def summarize(samples: list[float]) -> dict[str, Any]:
    if len(samples) > 1:
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        p50, p95, p99 = cuts[49], cuts[94], cuts[98]
    else:
        p50 = p95 = p99 = samples[0]
    return {
        "n": len(samples),
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "mean": statistics.fmean(samples),
        "stdev": statistics.stdev(samples) if len(samples) > 1 else 0.0,
        "min": min(samples),
        "max": max(samples),
        "samples": [round(s, 3) for s in samples],
    }


def measure(
    commands: dict[str, list[str]], env: dict[str, str], runs: int, warmup: int
) -> dict[str, list[float]]:
    names = list(commands)
    for _ in range(warmup):
        for name in names:
            time_once(commands[name], env)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        shift = r % len(names)  # rotate: each command takes each position equally often
        for name in names[shift:] + names[:shift]:
            samples[name].append(time_once(commands[name], env))
    return samples


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
    return lines


def check_targets(stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    p95 = stats[AXCTL]["p95"]
    ratio = stats[AXCTL]["p50"] / stats[IMPORTS]["p50"]
    return {
        "p95": {"value": p95, "target": TARGET_P95_MS, "met": p95 <= TARGET_P95_MS},
        "median_ratio": {
            "value": ratio,
            "target": TARGET_MEDIAN_RATIO,
            "met": ratio <= TARGET_MEDIAN_RATIO,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    python = sys.executable
    axctl = os.path.join(os.path.dirname(python), "axctl")
    if not os.access(axctl, os.X_OK):
        note(f"no axctl console script beside {python}; run this with the venv's python")
        return 2
    commands = {
        AXCTL: [axctl, "status", "--json"],
        PASS: [python, "-I", "-c", "pass"],
        IMPORTS: [python, "-c", "import click, json, socket"],
    }
    info = machine()
    bytecode = ensure_bytecode()

    tmp = tempfile.mkdtemp(prefix="axdb-", dir="/tmp")
    started = False
    try:
        os.chmod(tmp, 0o700)
        env = private_env(tmp)
        run_checked([axctl, "start"], env, "axctl start")
        started = True
        doc = json.loads(run_checked(commands[AXCTL], env, AXCTL))
        if not doc.get("running"):
            raise RuntimeError(f"{AXCTL} does not report a running daemon: {doc}")
        note(
            f"daemon pid {doc.get('pid')} on {env['AXD_SOCKET']}; "
            f"{args.warmup} warm-up and {args.runs} measured runs per command"
        )
        samples = measure(commands, env, args.runs, args.warmup)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
        note(f"error: {exc}")
        return 2
    finally:
        if started:
            stop_daemon(axctl, env)
        shutil.rmtree(tmp, ignore_errors=True)

    stats = {name: summarize(values) for name, values in samples.items()}
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
                    "results_ms": stats,
                    "targets": targets,
                },
                indent=2,
            )
        )
    else:
        print(
            f"machine: {info['cpu']}, {info['cores_usable']}/{info['cores']} cores, "
            f"{info['memory_gib']} GiB, {info['python']}, {info['os']}, {info['date_utc']}"
        )
        print(f"runs: {args.runs} per command, warm-up: {args.warmup}, order rotated each round")
        print("\n".join(figure_lines(stats, targets)))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())

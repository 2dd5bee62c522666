"""Running one step: its commands in the scratch workspace, with a deadline, and the verdict.

Each command runs under `bash` in a session of its own, so a timeout or Ctrl-C stops the
command and everything it started, and never the terminal's other processes. Output is
shown as it comes (`echo`) and kept for the comparison.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from axctl.tutorials import matching
from axctl.tutorials.model import Step

KILL_GRACE_S = 2.0
Echo = Callable[[str], None]


@dataclass
class Outcome:
    ok: bool
    reason: str = ""  # why not: "output", "exit", "timeout", "check"
    message: str = ""
    output: str = ""
    diff: str = ""
    seconds: float = 0.0
    commands: list[dict[str, object]] = field(default_factory=list)


class StepProcesses:
    """Process groups the steps started; what a step left running in the background (a
    collector, a server) lives until the tutorial ends, then is stopped with the rest."""

    def __init__(self) -> None:
        self.groups: list[int] = []

    def stop_all(self) -> None:
        for pgid in self.groups:
            _kill_group(pgid)
        self.groups.clear()


def run_step(
    step: Step,
    cwd: str,
    env: dict[str, str],
    processes: StepProcesses,
    echo: Echo | None = None,
) -> Outcome:
    started = time.monotonic()
    if step.kind == "file":
        return _write_file(step, cwd, started)
    outcome = Outcome(ok=True)
    for command in step.commands:
        if echo:
            echo(f"$ {command.line}\n")
        status, output, timed_out = _execute(command.line, cwd, env, step.timeout, processes, echo)
        outcome.output += output
        outcome.commands.append({"command": command.line, "exit": status, "output": output})
        if timed_out:
            return _failed(
                outcome,
                "timeout",
                f"`{command.line}` did not finish within {step.timeout:g} s and was stopped",
                started,
            )
        if step.exit_code is not None and status != step.exit_code:
            return _failed(
                outcome,
                "exit",
                f"`{command.line}` exited with status {status}, expected {step.exit_code}",
                started,
            )
        if command.expected and not matching.matches(command.expected, output):
            outcome.diff = matching.explain(command.expected, output)
            return _failed(outcome, "output", f"`{command.line}` printed something else", started)
    if step.check:
        status, output, timed_out = _execute(step.check, cwd, env, step.timeout, processes, None)
        if timed_out or status != 0:
            how = "timed out" if timed_out else f"failed (status {status})"
            outcome.output += output
            return _failed(outcome, "check", f"the check `{step.check}` {how}", started)
    outcome.seconds = time.monotonic() - started
    return outcome


def _write_file(step: Step, cwd: str, started: float) -> Outcome:
    target = os.path.join(cwd, step.path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".tutorial.tmp"  # `.tmp`: the daemon's watchers ignore it until it is renamed
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(step.content)
    os.replace(tmp, target)  # a watcher sees the whole file at once, as an editor's save
    return Outcome(ok=True, seconds=time.monotonic() - started)


def _failed(outcome: Outcome, reason: str, message: str, started: float) -> Outcome:
    outcome.ok, outcome.reason, outcome.message = False, reason, message
    outcome.seconds = time.monotonic() - started
    return outcome


def _execute(
    line: str,
    cwd: str,
    env: dict[str, str],
    timeout: float,
    processes: StepProcesses,
    echo: Echo | None,
) -> tuple[int, str, bool]:
    """(exit status, stdout and stderr as the terminal would show them, timed out)."""
    proc = subprocess.Popen(
        ["bash", "-o", "pipefail", "-c", line],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    processes.groups.append(proc.pid)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    show = _decoding(echo) if echo is not None else None
    deadline = time.monotonic() + timeout
    timed_out = False
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                # Until the command exits; a process it left in the background may hold the
                # pipe open for ever, so its exit (not EOF) ends the read.
                ready = sel.select(min(left, 0.1))
                if ready and not _read(fd, chunks, show):
                    break
                if proc.poll() is not None:
                    _drain(fd, chunks, show)
                    break
        except BaseException:
            _stop(proc)
            raise
    if timed_out:
        _stop(proc)
    status = proc.wait()
    proc.stdout.close()
    return status, b"".join(chunks).decode("utf-8", "replace"), timed_out


def _decoding(echo: Echo) -> Callable[[bytes], None]:
    """Echo bytes as text without splitting a character across two reads."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    return lambda data: echo(decoder.decode(data))


def _read(fd: int, chunks: list[bytes], echo: Callable[[bytes], None] | None) -> bool:
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return True
    if data and echo:
        echo(data)
    if data:
        chunks.append(data)
    return bool(data)


def _drain(fd: int, chunks: list[bytes], echo: Callable[[bytes], None] | None) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            return
        chunks.append(data)
        if echo:
            echo(data)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """The command and everything in its session: TERM, a grace period, then KILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(KILL_GRACE_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _kill_group(pgid: int) -> None:
    """A group whose leader is gone (what a step left in the background)."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)

"""Containment at the level of one plugin process, no daemon: what the channel refuses, how
output is cut, rate-limited and bounded, and how a plugin that cuts its channel is ended.

The plugins are the fault plugins of tests/data/plugins (badframes, cutoff, flood) run by a
real `PluginProcess` in an advisory group; every wait is on the process's own futures or on
log records, bounded by a timeout. The end-to-end side, under real cgroups with a daemon
serving other requests throughout, is test_containment.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from axd.config.schema import TypedSettings
from axd.events import EventBus, TypeFilter
from axd.plugins import logs, manifest, protocol
from axd.plugins.budgets import Budget
from axd.plugins.cgroups.advisory import AdvisoryBackend
from axd.plugins.cgroups.base import CgroupStats
from axd.plugins.logs import LogBuffer
from axd.plugins.monitor import Monitor
from axd.plugins.runner import PluginProcess, PluginUnavailable
from axd.plugins.state import PluginState
from tests.conftest import DATA

PLUGINS = DATA / "plugins"
WAIT = 15.0  # the bound on every wait for something the plugin does
CALL = 10.0

Launch = Callable[..., Awaitable[tuple[PluginProcess, "Records"]]]


class Records:
    """The on_log sink: records, and a wait for the first that matches."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def __call__(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self._changed.set()

    async def first(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async def scan() -> dict[str, Any]:
            while True:
                found = next((r for r in self.records if match(r)), None)
                if found is not None:
                    return found
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), WAIT)


async def no_daemon(method: str, params: dict[str, Any]) -> Any:
    raise LookupError(method)


@pytest.fixture
async def launch() -> AsyncIterator[Launch]:
    """Start a fault plugin; every process started is killed at the end of the test."""
    made: list[PluginProcess] = []

    async def start(name: str, **options: Any) -> tuple[PluginProcess, Records]:
        records = Records()
        group = AdvisoryBackend("unit tests").create(name)
        process = PluginProcess(
            manifest.load(str(PLUGINS / name)), group, records, no_daemon, **options
        )
        made.append(process)
        await process.start(WAIT)
        return process, records

    yield start
    for process in made:
        await process.kill()


# ---- the channel ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"method": 5}, "method must be a string, not int"),
        ({"method": "log", "params": [1, 2]}, "params must be an object, not list"),
        ({"id": 1, "error": "boom"}, "error must be an object, not str"),
        ({"id": 1, "error": {"code": 3, "message": "x"}}, "error.code must be a string"),
        ({"id": 1, "error": {"code": "x", "message": "y", "data": [1]}}, "error.data must be"),
        ({"id": {"a": 1}, "method": "search"}, "id must be a number or a string, not dict"),
        ({"id": True, "result": 1}, "id must be a number or a string, not bool"),
        ({"id": 1}, "neither method, result nor error"),
    ],
)
def test_messages_of_the_wrong_shape_are_protocol_errors(message, problem):
    with pytest.raises(protocol.ProtocolError, match=problem):
        protocol.check_message(message)


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "method": "log", "params": {"msg": "x"}},
        {"jsonrpc": "2.0", "method": "ready"},
        {"jsonrpc": "2.0", "id": "p1", "method": "search", "params": None},
        {"jsonrpc": "2.0", "id": 7, "result": None},
        {"jsonrpc": "2.0", "id": 7, "error": {"code": "plugin_error", "message": "m"}},
    ],
)
def test_messages_of_the_protocol_pass(message):
    protocol.check_message(message)


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("not_json", "frame is not JSON"),
        ("not_utf8", "frame is not JSON: 'utf-8' codec can't decode"),
        ("not_object", "frame is not a JSON object"),
        ("over_limit", "frame of 16777217 bytes announced"),
        ("method_not_string", "method must be a string"),
        ("params_not_object", "params must be an object"),
        ("error_not_object", "error must be an object"),
        ("error_data_not_object", "error.data must be an object"),
        ("id_not_scalar", "id must be a number or a string"),
    ],
)
async def test_a_frame_that_is_not_a_message_kills_the_plugin(launch, kind, problem):
    """Before, for a message of the wrong shape: the daemon's reader task died on it
    (AttributeError), leaving the plugin `running` with nobody reading its channel; every
    later call timed out, and nothing was reported."""
    process, records = await launch("badframes")
    with pytest.raises(PluginUnavailable, match=f"protocol error: {problem}"):
        await process.call("send", {"kind": kind}, CALL)
    assert await asyncio.wait_for(process.wait(), WAIT) == -9
    assert problem in (process.protocol_error or "")
    await records.first(lambda r: r["msg"].startswith(f"protocol error, killing: {problem}"))


async def test_log_records_of_any_shape_are_kept_as_bounded_strings(launch):
    """Before: a record's fields were kept as sent (a dict as `msg`, `"soon"` as `ts`),
    which broke the logs route and the timeline's sort, and a 2 MiB record was kept whole."""
    process, records = await launch("badframes")
    await process.call("send", {"kind": "log_fields_not_strings"}, CALL)
    odd = await records.first(lambda r: "nested" in r["msg"])
    assert odd["msg"] == "{'nested': [1]}" and odd["level"] == "info"
    assert isinstance(odd["ts"], float) and odd["logger"] == "plugin"
    await process.call("huge_logs", {"count": 1, "mb": 2}, CALL)
    huge = await records.first(lambda r: r["msg"].startswith("0 zzz"))
    assert huge["msg"].endswith(logs.CUT.format(logs.MAX_MSG))
    assert len(huge["msg"]) == logs.MAX_MSG + len(logs.CUT.format(logs.MAX_MSG))
    assert await process.call("huge_logs", {"count": 0, "mb": 0}, CALL) == "sent"  # alive


async def test_half_a_frame_then_the_end_of_the_channel_is_a_protocol_error(launch):
    process, _ = await launch("cutoff")
    with pytest.raises(PluginUnavailable, match=r"mid-frame \(10 of 100 bytes\)"):
        await process.call("cut", {"where": "mid_frame", "then": "live"}, CALL)
    assert await asyncio.wait_for(process.wait(), WAIT) == -9


async def test_a_plugin_that_closes_its_channel_and_lives_on_is_killed(launch):
    """Before: it stayed `running` for ever, unreachable, never restarted or reported."""
    process, records = await launch("cutoff", exit_grace=0.2)
    with pytest.raises(PluginUnavailable, match="the channel closed"):
        await process.call("cut", {"where": "between", "then": "live"}, CALL)
    assert await asyncio.wait_for(process.wait(), WAIT) == -9
    assert process.protocol_error == "it closed its channel and was still running 0.2s later"
    await records.first(lambda r: r["msg"].startswith("killing: it closed its channel"))


async def test_a_plugin_whose_channel_closes_as_it_exits_is_not_killed(launch):
    process, _ = await launch("cutoff", exit_grace=30)
    with pytest.raises(PluginUnavailable):
        await process.call("cut", {"where": "between", "then": "exit"}, CALL)
    assert await asyncio.wait_for(process.wait(), WAIT) == 0
    assert process.protocol_error is None


async def test_a_stopped_plugin_is_not_reaped(launch):
    process, _ = await launch("cutoff", exit_grace=0.0)
    assert await process.stop(5) == 0  # its channel closes as it exits: that was asked for
    assert process.protocol_error is None


async def test_a_plugin_that_never_answers_is_sent_sigterm_one_grace_after_the_ask(launch):
    """`stop(grace)` asks, waits `grace`, then SIGTERM. Before: the ask itself waited `grace`
    for an answer and the wait for the exit another `grace`, so a plugin whose worker hangs
    (mute) got SIGTERM only after twice the grace (bench/containment.py: a stop took 6.0 s
    at the default 3 s stop_grace)."""
    process, _ = await launch("mute")
    hanging = asyncio.create_task(process.call("hang", None, CALL))
    await asyncio.sleep(0)  # the call is sent: the plugin's one worker now waits forever
    signalled: dict[int, float] = {}  # when each signal was sent: its exit may come late
    send_signal = process.proc.send_signal

    def noting(sig: int) -> None:
        signalled.setdefault(sig, time.monotonic())
        send_signal(sig)

    process.proc.send_signal = noting
    grace = 1.5
    started = time.monotonic()
    assert await process.stop(grace) == -signal.SIGTERM  # mute leaves SIGTERM alone
    assert grace - 0.01 <= signalled[signal.SIGTERM] - started < 2 * grace
    with pytest.raises(PluginUnavailable):
        await hanging


# ---- output -----------------------------------------------------------------------------


async def test_a_line_without_end_is_cut_and_the_lines_after_it_still_arrive(launch):
    """Before: a line over 1 MiB ended the daemon's reading of that pipe for good (the
    StreamReader's limit), and the plugin's next write failed with a broken pipe."""
    process, records = await launch("flood")
    await process.call("longline_then", {"mb": 3, "text": "after the long line"}, CALL)
    await records.first(lambda r: r["msg"] == "after the long line")
    [cut] = [r for r in records.records if r["msg"].startswith("yyyy")]
    assert cut["msg"] == "y" * logs.MAX_MSG + logs.CUT.format(logs.MAX_MSG)
    assert cut["logger"] == "stdout"


async def test_output_beyond_the_rate_is_dropped_and_the_tail_of_stderr_kept(launch):
    buffer = LogBuffer()
    buffer.rate = 50
    process, records = await launch("flood", admit=buffer.admit)
    began = buffer.clock()
    await process.call("flood", {"into": "stderr"}, CALL)

    async def dropped(count: int) -> None:
        while buffer.dropped < count:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(dropped(1000), WAIT)
    # a bucket of 50 lines a second holding two seconds' worth: all that was kept fits in it
    assert len(records.records) <= 100 + 50 * (buffer.clock() - began)
    assert records.records and records.records[0]["msg"].startswith("flood xxx")
    assert process.stderr_tail[-1].startswith("flood xxx")  # a crash's tail, whatever the rate


def test_the_rate_limit_counts_drops_and_reports_them_once_a_second():
    now = [100.0]
    reports: list[tuple[int, int]] = []
    buffer = LogBuffer(clock=lambda: now[0])
    buffer.rate = 10
    buffer.on_dropped = lambda count, total: reports.append((count, total))
    assert buffer.admit(100) == 20  # the burst: two seconds' worth
    assert (buffer.dropped, reports) == (80, [(80, 80)])  # the first drop is reported at once
    now[0] += 0.5
    assert buffer.admit(10) == 5
    assert (buffer.dropped, reports) == (85, [(80, 80)])  # within the second: counted only
    now[0] += 0.75
    assert buffer.admit(10) == 7
    assert reports == [(80, 80), (8, 88)]
    notices = [r["msg"] for r in buffer.lines]
    assert notices[-1] == "8 lines of output dropped: over the log rate of 10 lines/s (88 so far)"


def test_a_flood_on_one_stream_does_not_starve_the_others():
    """stdout flooding in 64 KiB chunks took every token of a shared bucket: the traceback
    on stderr and the plugin's log records were dropped (seen in a full suite run)."""
    buffer = LogBuffer(clock=lambda: 100.0)
    buffer.rate = 10
    assert buffer.admit(300, "stdout") == 20
    assert buffer.admit(1, "stdout") == 0
    assert buffer.admit(5, "stderr") == 5
    assert buffer.admit(5, "log") == 5
    assert buffer.dropped == 281


def test_the_buffer_is_bounded_in_lines_and_bytes():
    buffer = LogBuffer(max_lines=100, max_bytes=64 << 10)
    for i in range(1000):
        buffer.add({"level": "info", "msg": f"{i} " + "x" * 4000, "ts": 0.0})
    assert buffer.bytes <= 64 << 10 and len(buffer.lines) == 15
    assert buffer.lines[-1]["msg"].startswith("999 ")
    for i in range(1000):
        buffer.add({"level": "info", "msg": str(i), "ts": 0.0})
    assert len(buffer.lines) == 100 and buffer.lines[0]["msg"] == "900"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"msg": "m", "level": "ERROR", "ts": 5}, {"msg": "m", "level": "error", "ts": 5.0}),
        ({"msg": None, "level": ["x"], "ts": float("nan")}, {"msg": "None", "level": "info"}),
        ({"msg": 1, "logger": {"a": 1}, "ts": 10**400}, {"msg": "1", "logger": "{'a': 1}"}),
    ],
)
def test_record_from_takes_any_json(params, expected):
    record = logs.record_from(params)
    assert {k: record[k] for k in expected} == expected
    assert isinstance(record["ts"], float) and record["ts"] == record["ts"]  # finite, no nan
    json.dumps(record, allow_nan=False)


# ---- the pids limit ---------------------------------------------------------------------


class FakeConfig(dict, TypedSettings):
    def on_change(self, _listener: Any) -> None:
        pass


def test_refused_forks_are_one_event_per_episode_and_a_lifetime_count():
    config = FakeConfig(
        {
            "plugins.sample_interval": 1.0,
            "budget.warn_fraction": 0.8,
            "budget.throttle_warn": 0.25,
            "budget.window": 10.0,
        }
    )

    class Fleet:
        pass

    fleet = Fleet()
    fleet.config = config  # type: ignore[attr-defined]
    fleet.enforcement = lambda: {"backend": "test"}  # type: ignore[attr-defined]
    bus = EventBus()
    monitor = Monitor(fleet, bus)  # type: ignore[arg-type]
    ps = PluginState(manifest.load(str(PLUGINS / "forkbomb")))
    ps.budget = Budget(pids=8)
    # the group's counter: quiet, a bomb, quiet, another bomb, then a new group (reload)
    for t, refused in enumerate([0, 0, 40, 90, 90, 95, 5, 5]):
        monitor.observe(ps, float(t), CgroupStats(pids=8, pids_limit_hits=refused))
    events = bus.recent(TypeFilter(["budget.exceeded"]))
    assert [(e["resource"], e["reason"], e["refused"]) for e in events] == [
        ("pids", "pids_limit", 40),
        ("pids", "pids_limit", 95),
    ]
    assert events[0]["limit"] == 8 and events[0]["pids"] == 8
    assert ps.usage.pids_limit_hits == 100
    assert monitor.stats(ps)["pids_limit_hits"] == 100

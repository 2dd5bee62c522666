"""The onboarding funnel the daemon keeps (axd/tutorials/funnel.py) and its API."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from axd.events import EventBus, TypeFilter
from axd.tutorials.funnel import Funnel
from tests.api.test_api import assert_error

ABANDON_AFTER = 60.0


def write_events(state: Path, *events: dict, tail: str = "") -> Path:
    """funnel.jsonl as the daemon writes it, and `tail` (a partial line, say) after."""
    path = state / "tutorials" / "funnel.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + tail)
    return path


def ev(ts: float, kind: str, session: str = "s1", tutorial: str = "demo", **fields) -> dict:
    return {"ts": ts, "type": kind, "tutorial": tutorial, "session": session, **fields}


def funnel(state: Path, bus: EventBus | None = None) -> Funnel:
    return Funnel(str(state), bus or EventBus(), ABANDON_AFTER)


def row(doc: dict, name: str = "demo") -> dict:
    return next(t for t in doc["tutorials"] if t["name"] == name)


def test_a_session_with_no_step_for_abandon_after_is_abandoned(tmp_path):
    write_events(
        tmp_path,
        ev(1000, "shown"),
        ev(1000, "started", steps=3),
        ev(1010, "step", step=1, title="One"),
    )
    f = funnel(tmp_path)
    quiet = row(f.stats(now=1069))
    assert (quiet["in_progress"], quiet["abandoned"]) == (1, 0)

    gone = row(f.stats(now=1070))
    assert (gone["in_progress"], gone["abandoned"]) == (0, 1)
    abandoned = [e for e in f.events if e["type"] == "abandoned"]
    assert abandoned == [ev(1070, "abandoned", step=1)]

    # Kept in the file, and never marked twice.
    again = funnel(tmp_path)
    assert row(again.stats(now=5000))["abandoned"] == 1
    assert [e["type"] for e in again.events].count("abandoned") == 1


def test_a_new_event_revives_an_abandoned_session(tmp_path):
    write_events(tmp_path, ev(1000, "started", steps=2), ev(1005, "step", step=1))
    f = funnel(tmp_path)
    assert row(f.stats(now=2000))["abandoned"] == 1

    f.record("step", "demo", "s1", step=2, steps=2)  # now: long after the abandonment
    back = row(f.stats())
    assert (back["abandoned"], back["in_progress"], back["steps"][1]["reached"]) == (0, 1, 1)

    f.record("completed", "demo", "s1", steps=2)
    done = row(f.stats(now=10**10))  # a completed session is never abandoned
    assert (done["completed"], done["abandoned"], done["in_progress"]) == (1, 0, 0)
    assert done["completion_rate"] == 1.0


def test_a_partial_last_line_is_skipped_and_the_next_event_kept(tmp_path):
    now = time.time()
    path = write_events(
        tmp_path,
        ev(now, "shown"),
        ev(now, "started"),
        tail='{"ts": 1001, "type": "st',  # a crash mid-write
    )
    f = funnel(tmp_path)
    assert len(f.events) == 2
    assert row(f.stats(now=now))["started"] == 1

    f.record("step", "demo", "s1", step=1)
    reread = funnel(tmp_path)
    assert [e["type"] for e in reread.events] == ["shown", "started", "step"]
    assert path.read_text().splitlines()[2] == '{"ts": 1001, "type": "st'


def test_unreadable_lines_are_skipped(tmp_path):
    write_events(
        tmp_path,
        ev(1000, "started"),
        {"ts": 1001, "type": "exploded", "tutorial": "demo", "session": "s1"},
        {"ts": "yesterday", "type": "step", "tutorial": "demo", "session": "s1", "step": 1},
        tail="not json\n[1, 2]\n",
    )
    assert [e["type"] for e in funnel(tmp_path).events] == ["started"]


def test_median_step_times_and_drop_off(tmp_path):
    write_events(
        tmp_path,
        *(ev(0, "shown", session=s) for s in ("a", "b", "c", "d")),
        *(ev(0, "started", session=s, steps=3) for s in ("a", "b", "c")),
        ev(10, "step", session="a", step=1, title="Index"),
        ev(30, "step", session="a", step=2, title="Search"),
        ev(20, "step", session="b", step=1),
        ev(25, "step", session="b", step=2),
        ev(40, "step", session="c", step=1),
        ev(31, "step", session="a", step=3),
        ev(32, "completed", session="a"),
    )
    doc = funnel(tmp_path).stats(now=50)
    t = row(doc)
    assert (t["shown"], t["started"], t["completed"], t["in_progress"]) == (4, 3, 1, 2)
    assert t["completion_rate"] == round(1 / 3, 4)
    assert t["steps"] == [
        {
            "step": 1,
            "title": "Index",
            "reached": 3,
            "drop_off": 0,
            "drop_off_rate": 0.0,
            "median_s": 20.0,  # 10, 20, 40
        },
        {
            "step": 2,
            "title": "Search",
            "reached": 2,
            "drop_off": 1,
            "drop_off_rate": round(1 / 3, 4),
            "median_s": 12.5,  # 20, 5
        },
        {
            "step": 3,
            "title": "",
            "reached": 1,
            "drop_off": 1,
            "drop_off_rate": 0.5,
            "median_s": 1.0,
        },
    ]
    assert doc["overall"] == {
        "shown": 4,
        "started": 3,
        "completed": 1,
        "abandoned": 0,
        "in_progress": 2,
        "completion_rate": round(1 / 3, 4),
    }
    assert doc["abandon_after_s"] == ABANDON_AFTER


def test_steps_never_reached_are_listed_from_the_tutorials_length(tmp_path):
    write_events(tmp_path, ev(0, "started", steps=3))
    steps = row(funnel(tmp_path).stats(now=1))["steps"]
    assert [(s["step"], s["reached"], s["median_s"]) for s in steps] == [
        (1, 0, None),
        (2, 0, None),
        (3, 0, None),
    ]
    assert steps[0]["drop_off_rate"] == 1.0 and steps[1]["drop_off_rate"] is None


def test_no_events_is_an_empty_funnel(tmp_path):
    doc = funnel(tmp_path).stats()
    assert doc["tutorials"] == [] and doc["events"] == 0
    assert doc["overall"]["completion_rate"] is None


def test_each_event_is_published_on_the_bus(tmp_path):
    bus = EventBus()
    f = funnel(tmp_path, bus)
    f.record("started", "demo", "s1", steps=1)
    f.stats(now=10**10)
    published = bus.recent(TypeFilter(["tutorial.*"]))
    assert [e["type"] for e in published] == ["tutorial.started", "tutorial.abandoned"]
    assert published[0]["tutorial"] == "demo" and published[0]["session"] == "s1"


# ---- the API, in-process ----------------------------------------------------------------

SESSION = "0123456789abcdef"


async def test_events_are_recorded_and_counted(api):
    for body in (
        {"type": "shown", "tutorial": "demo", "session": SESSION, "steps": 2},
        {"type": "started", "tutorial": "demo", "session": SESSION, "steps": 2},
        {"type": "step", "tutorial": "demo", "session": SESSION, "step": 1, "title": "One"},
    ):
        resp = await api.post("/v1/tutorials/events", json=body)
        assert resp.status == 200, await resp.text()
        recorded = await resp.json()
        assert recorded["type"] == body["type"] and recorded["ts"] > 0
    doc = await (await api.get("/v1/tutorials/stats")).json()
    t = row(doc)
    assert (t["shown"], t["started"], t["steps"][0]["title"]) == (1, 1, "One")


async def test_malformed_json_is_a_400(api):
    resp = await api.post(
        "/v1/tutorials/events", data=b'{"type": ', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert_error(await resp.json(), "invalid_json")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "finished"}, "body.type"),
        ({"type": "abandoned"}, "body.type"),  # the daemon's own verdict, never a client's
        ({"tutorial": "Not A Name"}, "body.tutorial"),
        ({"session": "xyz"}, "body.session"),
        ({"steps": 0}, "body.steps"),
        ({"title": "x" * 201}, "body.title"),
        ({"extra": 1}, "body.extra"),
    ],
)
async def test_invalid_events_are_a_422_naming_the_field(api, body, field):
    event = {"type": "started", "tutorial": "demo", "session": SESSION, **body}
    resp = await api.post("/v1/tutorials/events", json=event)
    assert resp.status == 422
    doc = await resp.json()
    assert_error(doc, "invalid_value")
    assert doc["error"]["details"]["field"] == field


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "step"}, "body.step is required"),
        ({"type": "step", "step": 3, "steps": 2}, "past the tutorial's last step"),
    ],
)
async def test_inconsistent_step_events_are_a_422(api, body, message):
    resp = await api.post(
        "/v1/tutorials/events", json={"tutorial": "demo", "session": SESSION, **body}
    )
    assert resp.status == 422
    doc = await resp.json()
    assert_error(doc, "invalid_value")
    assert message in doc["error"]["message"]
    stats = await (await api.get("/v1/tutorials/stats")).json()
    assert stats["events"] == 0

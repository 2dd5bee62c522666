"""The event bus: filters, bounded queues that tell a slow reader what it missed, history."""

from __future__ import annotations

import asyncio

import pytest

from axd.events import EventBus, TypeFilter


def test_type_filter_patterns():
    f = TypeFilter(["plugin.*", "config.reloaded"])
    assert f("plugin.crashed") and f("plugin.reload_failed") and f("config.reloaded")
    assert not f("config.reload_failed") and not f("pluginx.started")
    assert TypeFilter([])("anything") and TypeFilter(["*"])("anything")


@pytest.mark.parametrize("bad", ["Plugin", "plugin..x", "plugin*", "a b", ".x", "*.x"])
def test_bad_patterns_are_refused(bad):
    with pytest.raises(ValueError, match="bad event type pattern"):
        TypeFilter([bad])


async def test_subscriber_gets_matching_events_in_order():
    bus = EventBus()
    sub = bus.subscribe(TypeFilter(["a.*"]))
    bus.publish("a.one", n=1)
    bus.publish("b.two")
    bus.publish("a.three", n=3)
    bus.close()
    got = [e async for e in sub]
    assert [e["type"] for e in got] == ["a.one", "a.three"]
    assert all("ts" in e for e in got)


async def test_slow_subscriber_loses_oldest_and_is_told():
    bus = EventBus(queue_size=3)
    sub = bus.subscribe(TypeFilter())
    for i in range(10):
        bus.publish("tick", i=i)
    bus.close()
    got = [e async for e in sub]
    assert got[0] == {"ts": got[0]["ts"], "type": "events.dropped", "count": 7}
    assert [e["i"] for e in got[1:]] == [7, 8, 9]
    assert bus.stats()["dropped"] == 7


async def test_waiting_subscriber_wakes_on_publish():
    bus = EventBus()
    sub = bus.subscribe(TypeFilter())
    it = aiter(sub)
    waiter = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0)
    assert not waiter.done()
    bus.publish("x.y")
    event = await asyncio.wait_for(waiter, 2)
    assert event["type"] == "x.y"


def test_history_is_bounded_and_filterable():
    bus = EventBus(history=3)
    for i in range(5):
        bus.publish("a.b" if i % 2 else "c.d", i=i)
    assert [e["i"] for e in bus.recent(TypeFilter())] == [2, 3, 4]
    assert [e["i"] for e in bus.recent(TypeFilter(["a.*"]))] == [3]
    assert [e["i"] for e in bus.recent(TypeFilter(), limit=1)] == [4]
    bus.resize(history=1, queue_size=5)
    assert [e["i"] for e in bus.recent(TypeFilter())] == [4]


async def test_closed_subscription_is_forgotten():
    bus = EventBus()
    sub = bus.subscribe(TypeFilter())
    assert bus.stats()["subscribers"] == 1
    sub.close()
    assert bus.stats()["subscribers"] == 0


async def test_a_listener_that_raises_neither_fails_the_publisher_nor_starves_the_others(caplog):
    """A reload or an update publishes once it has happened; a broken listener (an alert
    rule, telemetry) must not turn that into an error halfway through."""
    bus = EventBus()
    heard = []

    def broken(event):
        raise KeyError("a rule that is gone")

    bus.listeners += [broken, heard.append]
    sub = bus.subscribe(TypeFilter())
    event = bus.publish("plugin.reloaded", plugin="greeter")
    again = bus.publish("plugin.reloaded", plugin="greeter")
    bus.close()
    assert event["type"] == "plugin.reloaded"
    assert heard == [event, again] and [e async for e in sub] == [event, again]
    assert bus.stats()["listener_errors"] == 2
    failed = [r for r in caplog.records if r.getMessage() == "an event listener failed"]
    assert len(failed) == 1 and failed[0].exc_info and "broken" in failed[0].listener

"""The API fuzzed over its socket (tests/stress/fuzz_api.py): every route, positive and
negative cases, no 5xx, no crash, every error in the documented shape, shutdown last.

The suite's run is short and derandomized (the same cases each time: a failure here is
reproducible); `make stress` (AXD_STRESS=full) sends at least 10,000 requests from a
random seed, printed with the figures for bench/RESULTS.md.
"""

from __future__ import annotations

import os
import random

import pytest

from tests.stress import fuzz_api

pytestmark = pytest.mark.e2e

FULL = os.environ.get("AXD_STRESS") == "full"


@pytest.mark.timeout(1800 if FULL else 120)
def test_every_route_answers_generated_requests_without_a_server_error(home, daemon_factory):
    workspace = fuzz_api.prepare(home)
    daemon = daemon_factory()
    daemon.start()
    seed = int(os.environ.get("AXD_STRESS_SEED") or random.randrange(1 << 30)) if FULL else None
    if seed is not None:
        print(f"AXD_STRESS_SEED={seed}")
    rss_before = fuzz_api.rss_mib(daemon.pid)
    report = fuzz_api.fuzz(
        daemon,
        workspace,
        requests_wanted=10_000 if FULL else 1,
        examples=60 if FULL else 4,
        run_seed=seed,
    )
    print("", *report.lines(), f"fuzz daemon RSS at start: {rss_before:.0f} MiB", sep="\n")
    assert not report.failures, "\n".join(report.failures[:30])
    assert report.crashes == 0 and report.server_errors == 0
    assert report.operations >= 50 and report.requests >= (10_000 if FULL else 200)
    assert report.shutdown_exit == 0

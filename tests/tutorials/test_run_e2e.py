"""`axctl tutorial` end to end: small pages of the test's own, a real daemon, the real CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from axd.daemon.launcher import axctl_path
from tests.conftest import Home, wait_for

pytestmark = pytest.mark.e2e

DEMO = """
    # Demo

    A tutorial of four steps.

    ## Make a file

    ```console { .runnable }
    $ echo hello > hello.txt && cat hello.txt
    hello
    ```

    <!-- check: test -f hello.txt -->

    ## Read it back

    ```console { .runnable }
    $ cat hello.txt
    hello
    ```

    ## Take notes

    ```text { .file path="notes/n.txt" }
    a note
    ```

    ```console { .runnable title="Read the notes" }
    $ cat notes/n.txt
    a note
    ```
"""

MISMATCH = """
    ```console { .runnable title="Say hi" }
    $ echo hi
    hi
    ```

    ```console { .runnable title="Say bye" }
    $ echo bye
    hello
    ```

    !!! hint
        The command says bye,
        not hello.
"""


def axctl(
    home: Home, *args: str, input: str | None = None, env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`axctl` against the home, with something typed on its stdin."""
    return subprocess.run(
        [axctl_path(), *args],
        env={**home.env, **(env or {})},
        input=input or "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def progress_file(home: Home) -> Path:
    return home.state_dir / "tutorials" / "progress.json"


def progress(home: Home, name: str = "demo") -> dict:
    return json.loads(progress_file(home).read_text())["tutorials"][name]


def scratch(home: Home, name: str = "demo") -> Path:
    return home.state_dir / "tutorials" / "scratch" / name


def stats(home: Home, name: str = "demo") -> dict:
    out = home.axctl("tutorial", "stats", name, "--json")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)["tutorials"]
    return row


def ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def running(marker: str) -> list[str]:
    """The command lines of live processes that carry `marker`."""
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()


def test_run_yes_completes_and_cleans_up(home, daemon, write_page):
    write_page("demo", DEMO)
    out = home.axctl("tutorial", "run", "demo", "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Demo  (4 steps)" in out.stdout
    for n, title in enumerate(["Make a file", "Read it back", "Take notes", "Read the notes"], 1):
        assert f"── Step {n}/4: {title}" in out.stdout
        assert f"✓ step {n} done" in out.stdout
    assert "Done: Demo. The scratch folder was removed." in out.stdout
    assert not scratch(home).exists()
    assert progress(home)["completed"] is True

    row = stats(home)
    assert (row["started"], row["completed"], row["in_progress"]) == (1, 1, 0)
    assert [s["reached"] for s in row["steps"]] == [1, 1, 1, 1]
    listed = json.loads(home.axctl("tutorial", "list", "--json").stdout)["tutorials"]
    assert next(t for t in listed if t["name"] == "demo")["progress"] == "done"


def test_run_json_is_one_object_per_line(home, daemon, write_page):
    write_page("demo", DEMO)
    out = home.axctl("tutorial", "run", "demo", "--json")
    assert out.returncode == 0, out.stderr
    lines = ndjson(out.stdout)
    assert [d["type"] for d in lines] == ["intro", "step", "step", "step", "step", "result"]
    assert lines[0]["name"] == "demo" and lines[0]["first_step"] == 1
    assert all(d["ok"] for d in lines[1:5])
    assert lines[1]["output"] == "hello\n"
    assert lines[-1]["completed"] is True and lines[-1]["failed"] is None

    shown = json.loads(home.axctl("tutorial", "show", "demo", "--json").stdout)
    assert (shown["title"], shown["intro"]) == ("Demo", "A tutorial of four steps.")
    assert [s["kind"] for s in shown["steps"]] == ["run", "run", "file", "run"]
    assert shown["steps"][0]["expected"] == [["hello"]]
    assert shown["steps"][0]["check"] == "test -f hello.txt"
    assert shown["steps"][2]["content"] == "a note\n"
    assert stats(home)["shown"] == 2  # `run` and `show` each showed it once


def test_quit_midway_then_run_resumes_at_the_next_step(home, daemon, write_page):
    write_page("demo", DEMO)
    first = axctl(home, "tutorial", "run", "demo", input="\nq\n")  # Enter runs step 1, q quits
    assert first.returncode == 0, first.stderr
    assert "✓ step 1 done" in first.stdout
    assert "Step 2/4" in first.stdout and "step 2 done" not in first.stdout
    assert "Stopped at step 2; `axctl tutorial run demo` resumes." in first.stdout
    assert progress(home)["next_step"] == 2
    assert (scratch(home) / "workspace" / "hello.txt").read_text() == "hello\n"
    table = home.axctl("tutorial", "stats", "demo").stdout
    # Steps nobody reached yet are named from the page, not left blank.
    assert re.search(r"4 +0 +0 \(-\) +- +Read the notes", table), table

    again = home.axctl("tutorial", "run", "demo", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Resuming at step 2 (--reset starts over)." in again.stdout
    assert "Step 1/4" not in again.stdout and "✓ step 4 done" in again.stdout

    row = stats(home)  # one session from start to end
    assert (row["started"], row["completed"]) == (1, 1)

    axctl(home, "tutorial", "run", "demo", input="\nq\n")  # quit at step 2 of a new session
    reset = home.axctl("tutorial", "run", "demo", "--reset", "--yes")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert "Resuming" not in reset.stdout and "✓ step 1 done" in reset.stdout
    row = stats(home)
    assert (row["started"], row["completed"], row["in_progress"]) == (3, 2, 1)


def test_a_step_printing_something_else_fails_with_the_diff_and_the_hint(home, daemon, write_page):
    write_page("bad", MISMATCH)
    out = home.axctl("tutorial", "run", "bad", "--yes")
    assert out.returncode == 1
    assert "✓ step 1 done" in out.stdout
    assert "✗ step 2 (Say bye): `echo bye` printed something else" in out.stdout
    assert "--- expected\n+++ got\n@@ -1 +1 @@\n-hello\n+bye\n" in out.stdout
    assert "hint: The command says bye, not hello." in out.stdout
    assert "Stopped at step 2" in out.stdout
    assert progress(home, "bad")["next_step"] == 2

    as_json = ndjson(home.axctl("tutorial", "run", "bad", "--json").stdout)
    assert as_json[0]["resumed"] is True and as_json[0]["first_step"] == 2
    failed = as_json[-1]["failed"]
    assert (failed["step"], failed["title"], failed["reason"]) == (2, "Say bye", "output")
    assert "-hello\n+bye" in failed["diff"] and failed["hint"] == "The command says bye, not hello."


def test_an_unexpected_exit_status_fails_the_step(home, daemon, write_page):
    write_page(
        "status",
        """
        ```console { .runnable title="Expect three" exit="3" }
        $ exit 4
        ```
        """,
    )
    out = home.axctl("tutorial", "run", "status", "--yes")
    assert out.returncode == 1
    assert "✗ step 1 (Expect three): `exit 4` exited with status 4, expected 3" in out.stdout


def test_a_step_that_times_out_is_stopped_with_what_it_started(home, daemon, write_page):
    marker = f"marker-{uuid.uuid4().hex}"
    ready = home.root / "ready"
    write_page(
        "slow",
        f"""
        ```console {{ .runnable title="Wait" timeout="2" }}
        $ python3 -c 'import time; open("{ready}", "w").close(); time.sleep(30)' \\
            {marker}; echo never
        ```
        """,
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        [axctl_path(), "tutorial", "run", "slow", "--yes"],
        env=home.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready.exists, timeout=20)
        assert len(running(marker)) == 2  # bash and the python it started
        stdout, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1
    assert "✗ step 1 (Wait): " in stdout and "did not finish within 2 s and was stopped" in stdout
    assert "never" not in stdout.splitlines()
    assert time.monotonic() - started < 15
    assert running(marker) == []


def test_sigint_mid_step_exits_130_and_keeps_progress(home, daemon, write_page):
    marker = f"marker-{uuid.uuid4().hex}"
    ready = home.root / "ready"
    write_page(
        "demo",
        f"""
        ```console {{ .runnable title="One" }}
        $ echo one
        one
        ```

        ```console {{ .runnable title="Wait for Ctrl-C" }}
        $ test -e {ready} || {{ touch {ready}; \\
            python3 -c 'import time; time.sleep(30)' {marker}; }}
        ```

        ```console {{ .runnable title="Three" }}
        $ echo three
        three
        ```
        """,
    )
    proc = subprocess.Popen(
        [axctl_path(), "tutorial", "run", "demo", "--yes"],
        env=home.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready.exists, timeout=20)
        wait_for(lambda: len(running(marker)) == 2, timeout=10)  # bash, and python in it
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert "stopped at step 2; `axctl tutorial run demo` resumes there" in stderr
    assert running(marker) == []
    assert progress(home)["next_step"] == 2
    assert scratch(home).is_dir()

    again = home.axctl("tutorial", "run", "demo", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Resuming at step 2" in again.stdout and "Step 1/3" not in again.stdout


def test_step_n_replays_the_earlier_steps_first(home, daemon, write_page):
    write_page("demo", DEMO)
    out = home.axctl("tutorial", "run", "demo", "--step", "2", "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "setting up: running steps 1-1 first" in out.stdout
    assert "Step 1/4" not in out.stdout and "✓ step 2 done" in out.stdout  # hello.txt is there

    past = home.axctl("tutorial", "run", "demo", "--step", "9", "--yes")
    assert past.returncode == 2
    assert "demo has steps 1 to 4, not 9" in past.stderr


def test_without_a_daemon_and_no_autostart_it_says_so(home, write_page):
    write_page("demo", DEMO)
    out = home.axctl("tutorial", "run", "demo", "--yes", env={"AXCTL_NO_AUTOSTART": "1"})
    assert out.returncode == 3, out.stdout + out.stderr
    assert "axctl: this step needs axd, which is not running" in out.stderr
    assert "hint: start it with `axctl start`" in out.stderr
    assert "tutorial progress was not recorded in the daemon" in out.stderr
    as_json = home.axctl("tutorial", "run", "demo", "--json", env={"AXCTL_NO_AUTOSTART": "1"})
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout.splitlines()[-1])["error"]["code"] == "daemon_unreachable"
    assert not os.path.exists(home.socket)


def test_a_corrupt_progress_file_is_moved_aside(home, daemon, write_page):
    write_page("demo", DEMO)
    progress_file(home).parent.mkdir(parents=True)
    progress_file(home).write_text('{"version": 1, "tutorials": {"demo": {"next')
    out = home.axctl("tutorial", "run", "demo", "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"axctl: warning: tutorial progress in {progress_file(home)} is unreadable" in out.stderr
    assert "Resuming" not in out.stdout
    (aside,) = progress_file(home).parent.glob("progress.json.corrupt-*")
    assert aside.read_text().endswith('"demo": {"next')
    assert progress(home)["completed"] is True


def test_an_unknown_name_suggests_the_closest(home, write_page):
    write_page("demo", DEMO)
    out = home.axctl("tutorial", "run", "dmeo")
    assert out.returncode == 2
    assert "axctl: no tutorial named 'dmeo'" in out.stderr
    assert "hint: did you mean demo? `axctl tutorial list` shows them all" in out.stderr
    err = json.loads(home.axctl("tutorial", "run", "dmeo", "--json").stdout)["error"]
    assert err["code"] == "unknown_tutorial" and err["details"]["suggestions"] == ["demo"]


def test_an_invalid_page_names_the_page_and_line(home, write_page):
    write_page("broken", "```console { .runnable }\n$ true\n")
    out = home.axctl("tutorial", "run", "broken")
    assert out.returncode == 1
    assert "axctl: broken:7: unclosed code block" in out.stderr


def test_tutorial_test_names_the_failing_tutorial_and_step(home, daemon, write_page):
    write_page("bad", MISMATCH)
    out = home.axctl("tutorial", "test", "bad")
    assert out.returncode == 1
    assert "  ✓ 1 Say hi" in out.stdout and "  ✗ 2 Say bye" in out.stdout
    assert "-hello\n+bye" in out.stdout and "hint: The command says bye, not hello." in out.stdout
    assert "FAILED: tutorial bad, step 2 (Say bye): `echo bye` printed something else" in out.stdout
    assert not scratch(home, "bad").exists()
    assert not progress_file(home).exists()  # a test is not the user's progress

    lines = ndjson(home.axctl("tutorial", "test", "bad", "--json").stdout)
    assert [d["type"] for d in lines] == ["intro", "step", "step", "result"]
    assert lines[-1]["ok"] is False and lines[-1]["tutorials"][0]["failed"]["step"] == 2
    assert json.loads(home.axctl("tutorial", "stats", "--json").stdout)["tutorials"] == []


def test_tutorial_test_passes_and_keep_leaves_the_scratch_folder(home, daemon, write_page):
    write_page("demo", DEMO)
    out = home.axctl("tutorial", "test", "demo", "--keep")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.endswith("1 tutorial passed\n")
    assert (scratch(home) / "workspace" / "notes" / "n.txt").read_text() == "a note\n"


def test_stats_draws_a_png_chart(home, daemon, write_page):
    write_page("demo", DEMO)
    assert home.axctl("tutorial", "run", "demo", "--yes").returncode == 0
    chart = home.root / "funnel.png"
    out = home.axctl("tutorial", "stats", "--chart", str(chart))
    assert out.returncode == 0, out.stderr
    assert "demo: shown 1 → started 1 → completed 1 (100%); 0 abandoned" in out.stdout
    assert f"chart: {chart}" in out.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_scratch_tutorial_gets_a_daemon_of_its_own(home, daemon, write_page):
    write_page(
        "own",
        """
        ```console { .runnable title="Whose daemon?" }
        $ axctl status --json \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["state_dir"])'
        .../tutorials/scratch/own/home/state
        ```
        """,
        daemon="scratch",
    )
    own_socket = Path(home.socket).parent / "tutorial-own.sock"
    try:
        out = home.axctl("tutorial", "run", "own", "--yes")
        assert out.returncode == 0, out.stdout + out.stderr
    finally:
        home.axctl("--socket", str(own_socket), "--no-autostart", "stop")
    assert not own_socket.exists()  # stopped when the tutorial ended
    assert not scratch(home, "own").exists()
    assert stats(home, "own")["completed"] == 1  # the funnel is in the user's daemon


def test_what_a_step_leaves_in_the_background_is_stopped_at_the_end(home, daemon, write_page):
    marker = f"marker-{uuid.uuid4().hex}"
    write_page(
        "bg",
        f"""
        ```console {{ .runnable title="Start a server" }}
        $ python3 -c 'import time; print("up", flush=True); time.sleep(60)' \\
            {marker} > server.log 2>&1 &
        ```

        ```console {{ .runnable title="It runs" }}
        $ until grep -q up server.log; do sleep 0.05; done; cat server.log
        up
        ```
        """,
    )
    out = axctl(home, "tutorial", "run", "bg", "--yes", timeout=20)
    assert out.returncode == 0, out.stdout + out.stderr
    assert running(marker) == []

"""The hot path (`axctl/fast.py`) answers exactly as the click CLI does, without click.

Every hot command line runs both ways against the same daemon; exit code, stdout and
stderr must be equal (numbers that change between two calls, such as took_ms, are masked;
`status`, the daemon's live state, is compared by its layout). Lines the fast path does
not know are handed to click unchanged.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import BIN, DATA

pytestmark = pytest.mark.e2e

CLICK = [
    sys.executable,
    "-c",
    "import sys; from axctl.cli import main; sys.argv[0] = 'axctl'; main()",
]
NUMBER = re.compile(r"\d+(\.\d+)?")
LIVE_WORDS = ("note", "reason", "advice")  # status: transient health, as it is at that moment


def comparable(args: list[str], text: str) -> str:
    """What must be equal between the fast run and the click run. `status` shows the
    daemon's live state, which moves between the two calls (uptime crossing a minute, a
    loop-lag note coming and going, the index loading): for it, the layout must be the
    same (the fields, their order, their names), not the values."""
    if "status" not in args or args[0] == "index" or not text.strip():
        return NUMBER.sub("N", text)
    if "--json" in args:
        return json.dumps(_keys(json.loads(text)))
    kept = []
    for line in text.splitlines():
        if re.match(r"^[a-z_]+: |^  what to do: ", line):
            continue  # a component's note or reason (LIVE_WORDS)
        label = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        keys = re.findall(r"(\w+)=", line)
        kept.append(line[: len(line) - len(line.lstrip())] + label + " " + " ".join(keys))
    return "\n".join(kept)


def _keys(doc: object) -> object:
    if isinstance(doc, dict):
        return {k: _keys(v) for k, v in doc.items() if k not in LIVE_WORDS}
    return None


def same_answer(args: list[str], fast, slow) -> None:
    assert fast.returncode == slow.returncode, (fast, slow)
    assert comparable(args, fast.stdout) == comparable(args, slow.stdout)
    assert NUMBER.sub("N", fast.stderr) == NUMBER.sub("N", slow.stderr)
    assert "Traceback" not in fast.stderr


@pytest.fixture(scope="module")
def project(shared_home, shared_daemon):
    root = shared_home.root / "project"
    shutil.copytree(DATA / "polyglot", root)
    assert shared_home.axctl("index", str(root)).returncode == 0
    return root


def both(home, args, cwd, env=None):
    """(fast, click) results; a first run warms the query cache, so both see a hit."""
    env = {**home.env, **(env or {})}
    subprocess.run(
        [str(BIN / "axctl"), *args], env=env, cwd=cwd, capture_output=True, timeout=60, check=False
    )
    fast = subprocess.run(
        [str(BIN / "axctl"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    slow = subprocess.run(
        [*CLICK, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    return fast, slow


HOT_LINES = [
    ["status"],
    ["status", "--json"],
    ["find", "terminal", "size"],
    ["find", "terminal", "size", "--json"],
    ["find", "-n", "2", "connection"],
    ["find", "--limit=3", "connection", "lang:python"],
    ["find", "connection", "-path:*.ts", "--no-cache"],
    ["find", "terminal", "--debug"],
    ["find", "--fresh", "pool", "acquire"],
    ["find", "nothing_matches_zzq"],
    ["find", "x", "lang:klingon"],
    ["find", "  "],
    ["find", "--", "-kind:class", "terminal"],
    ["def", "get_terminal_size"],
    ["def", "get_terminl_size", "--json"],
    ["def", "no_such_definition_q"],
    ["def", "no_such_definition_q", "--json"],
    ["refs", "makeHttpConnection"],
    ["refs", "x"],
    ["refs", "-n", "1", "makeHttpConnection", "--json"],
    ["index", "status"],
    ["index", "status", "--json"],
    ["index", "status", "--all"],
    ["--no-autostart", "find", "terminal"],
]


@pytest.mark.parametrize("args", HOT_LINES, ids=" ".join)
def test_hot_commands_answer_as_click_does(shared_home, project, args):
    fast, slow = both(shared_home, args, cwd=project)
    same_answer(args, fast, slow)


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["--no-autostart", "find", "x"],
        ["def", "x", "--json"],
        ["index", "status"],
    ],
    ids=" ".join,
)
def test_without_a_daemon_both_answer_the_same(home, args):
    fast, slow = both(
        home, ["--no-autostart", *args] if args[0] != "--no-autostart" else args, cwd=home.root
    )
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode,
        slow.stdout,
        slow.stderr,
    )
    assert fast.returncode == 3


@pytest.mark.parametrize(
    "args",
    [
        ["find", "--help"],
        ["find", "-n", "0", "x"],
        ["status", "--bogus"],
        ["def"],
        ["refs", "a", "b"],
        ["--trace", "status"],
        ["-V"],
        # one event no other test publishes: the newest of all could change between calls
        ["events", "-n", "1", "-t", "daemon.started"],
    ],
    ids=" ".join,
)
def test_other_lines_are_handed_to_click_unchanged(shared_home, shared_daemon, args):
    fast, slow = both(shared_home, args, cwd=shared_home.root)
    same_answer(args, fast, slow)


IMPORTS_OF = """
import sys
from axctl.fast import run
code = run(sys.argv[1:])
print(code, "click" in sys.modules, file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--json"],
        ["find", "terminal", "--json"],
        ["def", "Terminal"],
        ["index", "status"],
    ],
    ids=" ".join,
)
def test_hot_commands_never_import_click(shared_home, project, args):
    out = subprocess.run(
        [sys.executable, "-c", IMPORTS_OF, *args],
        env=shared_home.env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    code, click_loaded = out.stderr.strip().splitlines()[-1].split()
    assert code == "0" and click_loaded == "False"


def test_negated_filters_are_query_words_both_ways(shared_home, project):
    fast, slow = both(
        shared_home, ["find", "connection", "-lang:typescript", "--json"], cwd=project
    )
    assert fast.returncode == slow.returncode == 0, slow.stderr
    assert NUMBER.sub("N", fast.stdout) == NUMBER.sub("N", slow.stdout)
    assert '"lang": "javascript"' in fast.stdout and '"lang": "typescript"' not in fast.stdout


@pytest.mark.parametrize(
    "args", [["find", "terminal"], ["index", "status"], ["events", "-n", "5"]], ids=" ".join
)
def test_a_reader_that_goes_away_ends_the_command_quietly(shared_home, project, args):
    proc = subprocess.Popen(
        [str(BIN / "axctl"), *args, "--json"],
        env=shared_home.env,
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # like `| head -0`
    err = proc.stderr.read().decode()
    proc.wait(30)
    proc.stderr.close()
    assert "Traceback" not in err and proc.returncode in (0, 141, -13)

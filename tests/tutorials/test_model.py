"""A tutorial page parsed into steps: what the runner runs is what the page says."""

from __future__ import annotations

import pytest

from axctl.tutorials.model import DEFAULT_TIMEOUT_S, TutorialError, parse
from tests.tutorials.conftest import page_text

STEPS = """
    # Demo

    A first paragraph
    on two lines.

    A second paragraph.

    ## Say hello

    ```console { .runnable }
    $ echo hello
    hello
    $ printf 'a\\nb\\n'
    a
    b

    ```

    <!-- check: test -f hello.txt -->

    !!! hint
        Is `echo` on your PATH?
        It usually is.

    ## Write a file

    ```python { .file path="pkg/mod.py" title="The module" }
    def f():
        return 1
    ```

    ```console { .runnable title="Slow and failing" timeout="2.5" exit="3" }
    $ python3 -c 'import sys; \\
    >   sys.exit(3)'
    ```

    ```console { .runnable exit="any" }
    $ false
    ```

    ```bash
    $ not a step: no class
    ```
"""


def test_front_matter_fields():
    t = parse(
        "demo",
        page_text(
            STEPS,
            title="A demo tutorial",
            description="One sentence.",
            order="7",
            level="beginner",
            time="5 minutes",
            daemon="scratch",
            workspace="shop",
        ),
    )
    assert (t.name, t.title, t.description) == ("demo", "A demo tutorial", "One sentence.")
    assert t.order == 7
    assert (t.level, t.time, t.daemon, t.workspace) == ("beginner", "5 minutes", "scratch", "shop")
    assert t.intro == "A first paragraph on two lines."
    assert t.summary()["steps"] == 4


def test_defaults_without_front_matter():
    t = parse("bare", "```console { .runnable }\n$ true\n```\n")
    assert (t.title, t.order, t.daemon, t.workspace) == ("bare", 999, "shared", "")


def test_runnable_steps_commands_and_expected_lines():
    steps = parse("demo", page_text(STEPS)).steps
    assert [s.kind for s in steps] == ["run", "file", "run", "run"]
    first = steps[0]
    assert (first.number, first.title, first.timeout, first.exit_code) == (
        1,
        "Say hello",  # the heading above, as no title="" is given
        DEFAULT_TIMEOUT_S,
        0,
    )
    assert [c.line for c in first.commands] == ["echo hello", "printf 'a\\nb\\n'"]
    assert first.commands[0].expected == ["hello"]
    assert first.commands[1].expected == ["a", "b"]  # the trailing blank line does not count
    assert first.check == "test -f hello.txt"
    assert first.hint == "Is `echo` on your PATH? It usually is."


def test_title_timeout_and_exit_attributes():
    steps = parse("demo", page_text(STEPS)).steps
    slow = steps[2]
    assert (slow.title, slow.timeout, slow.exit_code) == ("Slow and failing", 2.5, 3)
    assert steps[3].exit_code is None  # exit="any"
    assert steps[3].title == "Write a file"  # the heading above it


def test_continuation_lines_are_one_command():
    slow = parse("demo", page_text(STEPS)).steps[2]
    assert [c.line for c in slow.commands] == ["python3 -c 'import sys; \\\n>   sys.exit(3)'"]
    assert slow.commands[0].expected == []


def test_file_step():
    step = parse("demo", page_text(STEPS)).steps[1]
    assert (step.kind, step.path, step.title) == ("file", "pkg/mod.py", "The module")
    assert step.content == "def f():\n    return 1\n"
    assert step.describe() == {
        "step": 2,
        "title": "The module",
        "kind": "file",
        "path": "pkg/mod.py",
    }


def test_hint_with_a_title_and_a_step_without_trailers():
    body = """
        ```console { .runnable title="One" }
        $ true
        ```

        !!! hint "When it fails"
            Look closer.

        ```console { .runnable title="Two" }
        $ true
        ```

        Some prose.
    """
    one, two = parse("demo", page_text(body)).steps
    assert one.hint == "Look closer."
    assert (two.hint, two.check) == ("", "")


def test_longer_fences_hold_shorter_ones():
    body = """
        ````console { .runnable }
        $ cat notes.md
        ```
        code
        ```
        ````
    """
    (step,) = parse("demo", page_text(body)).steps
    assert step.commands[0].expected == ["```", "code", "```"]


@pytest.mark.parametrize(
    ("meta", "body", "message"),
    [
        ({"daemon": "mine"}, "", "demo: daemon must be one of shared, scratch, not 'mine'"),
        ({"order": "first"}, "", "demo: order must be a whole number, not 'first'"),
        (
            {},
            '```console { .runnable timeout="soon" }\n$ true\n```\n',
            "demo: timeout must be a number of seconds above 0, not 'soon'",
        ),
        ({}, '```console { .runnable exit="ok" }\n$ true\n```\n', "exit must be a whole number"),
        ({}, "```console { .runnable }\n$ true\n", "demo:7: unclosed code block"),
        ({}, "```console { .runnable }\n```\n", "a runnable block has no `$ ` command"),
        ({}, "```console { .runnable }\nhello\n$ true\n```\n", "starts with a `$ ` line"),
        ({}, "```text { .file }\nx\n```\n", 'a .file block needs path="..."'),
        ({}, '```text { .file path="../out" }\nx\n```\n', "path must stay inside the workspace"),
        ({}, '```text { .file path="/etc/x" }\nx\n```\n', "path must stay inside the workspace"),
        ({}, "Only prose.\n", "demo: no runnable steps"),
    ],
)
def test_malformed_pages_are_clear_errors(meta, body, message):
    default = "```console { .runnable }\n$ true\n```\n"
    with pytest.raises(TutorialError) as exc:
        parse("demo", page_text(body or default, **meta))
    assert message in str(exc.value)


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_a_timeout_must_be_a_positive_finite_number(value):
    with pytest.raises(TutorialError, match="timeout must be"):
        parse("demo", page_text(f'```console {{ .runnable timeout="{value}" }}\n$ true\n```\n'))


def test_unclosed_front_matter_and_bad_front_matter_lines():
    with pytest.raises(TutorialError, match="front matter is not closed"):
        parse("demo", "---\ntitle: x\n\n```console { .runnable }\n$ true\n```\n")
    with pytest.raises(TutorialError, match=r"demo:3: front matter line is not `key: value`"):
        parse("demo", "---\ntitle: x\njust words\n---\n```console { .runnable }\n$ true\n```\n")


def test_errors_give_the_line_in_the_page():
    text = page_text("# Demo\n\n```console { .runnable }\nnot a command\n```\n")
    with pytest.raises(TutorialError) as exc:
        parse("demo", text)
    fence_line = text.splitlines().index("```console { .runnable }") + 1
    assert str(exc.value).startswith(f"demo:{fence_line}: ")

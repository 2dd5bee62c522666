"""The tutorials in the package: each a valid page, in a clear order, linking to pages and
samples that ship with it. (`make tutorials` runs their steps; these checks are quick.)"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from axctl.tutorials import catalog
from axctl.tutorials.model import parse

PAGES = Path(catalog.PAGES)
LINK = re.compile(r"\]\((?P<name>[\w.-]+)\.md(?:#[^)]*)?\)")


def shipped() -> list[str]:
    return sorted(
        p.stem for p in PAGES.glob("*.md") if p.name != "index.md" and not p.name.startswith("_")
    )


def load(name: str):
    return parse(name, (PAGES / f"{name}.md").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def only_shipped(monkeypatch):
    monkeypatch.delenv("AXCTL_TUTORIAL_PATH", raising=False)


@pytest.mark.parametrize("name", shipped())
def test_page_parses_into_steps(name):
    t = load(name)
    assert t.title and t.title != name, f"{name}: no title in the front matter"
    assert t.description, f"{name}: no description (the tutorial list shows it)"
    assert t.order != 999, f"{name}: no order in the front matter"
    assert t.steps


@pytest.mark.parametrize("name", shipped())
def test_links_point_to_tutorial_pages(name):
    text = (PAGES / f"{name}.md").read_text(encoding="utf-8")
    missing = sorted({m["name"] for m in LINK.finditer(text)} - set(shipped()))
    assert not missing, f"{name} links to pages that do not exist: {missing}"


@pytest.mark.parametrize("name", shipped())
def test_workspace_sample_is_shipped(name):
    workspace = load(name).workspace
    if workspace:
        assert os.path.isdir(catalog.sample_dir(workspace))


def test_orders_are_unique():
    by_order: dict[int, list[str]] = {}
    for name in shipped():
        by_order.setdefault(load(name).order, []).append(name)
    assert {o: n for o, n in by_order.items() if len(n) > 1} == {}


def test_the_catalog_lists_the_shipped_pages_in_order():
    tutorials = catalog.load_all()
    assert [t.name for t in tutorials] == sorted(shipped(), key=lambda n: (load(n).order, n))


def test_at_least_twenty_tutorials_ship():
    names = shipped()
    assert len(names) >= 20, f"{len(names)} tutorials ship: {names}"


def test_the_systemd_tutorial_writes_the_units_the_repository_ships():
    """The page writes the units step by step (a wheel has no systemd/ folder to copy
    from); they must stay the ones in systemd/."""
    repo = PAGES.parents[2]
    written = {s.path: s.content for s in load("systemd-install").steps if s.kind == "file"}
    for unit in ("axd.service", "axd.socket"):
        assert written[f"systemd/{unit}"] == (repo / "systemd" / unit).read_text(), unit

"""`axctl tutorial stats`: the funnel the daemon computed, as a table and as a chart."""

from __future__ import annotations

from typing import Any

from axctl import output


def fill_titles(doc: dict[str, Any]) -> None:
    """Titles for the steps nobody reached yet (the daemon knows only the steps it was
    told about), from the tutorials installed here."""
    from axctl.tutorials import catalog

    for t in doc["tutorials"]:
        missing = [s for s in t["steps"] if not s.get("title")]
        if not missing:
            continue
        try:
            steps = {s.number: s.title for s in catalog.load(t["name"]).steps}
        except Exception:  # a tutorial no longer installed: its numbers are enough
            continue
        for s in missing:
            s["title"] = steps.get(s["step"])


def text(doc: dict[str, Any]) -> str:
    overall = doc["overall"]
    if not doc["tutorials"]:
        return "no tutorial has been shown or run yet: try `axctl tutorial run first-search`"
    lines = [
        "overall: "
        + _stages(overall)
        + f"; {overall['abandoned']} abandoned, {overall['in_progress']} in progress",
        "",
    ]
    for t in doc["tutorials"]:
        lines.append(f"{t['name']}: {_stages(t)}; {t['abandoned']} abandoned")
        rows: list[tuple[Any, ...]] = [("STEP", "REACHED", "DROP-OFF", "MEDIAN TIME", "TITLE")]
        for s in t["steps"]:
            rows.append(
                (
                    s["step"],
                    s["reached"],
                    f"{s['drop_off']} ({_percent(s['drop_off_rate'])})",
                    "-" if s["median_s"] is None else f"{s['median_s']:.1f} s",
                    s["title"] or "-",
                )
            )
        lines.append(output.table(rows, indent=2))
        lines.append("")
    minutes = doc["abandon_after_s"] / 60
    lines.append(f"abandoned: no step for {minutes:g} min (config tutorials.abandon_after)")
    return "\n".join(lines)


def chart(doc: dict[str, Any], path: str) -> None:
    """One horizontal funnel per tutorial (shown, started, each step, completed), on one
    image; PNG or SVG by the file's extension."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("the chart needs matplotlib: pip install 'axd[charts]'") from None
    tutorials = doc["tutorials"] or [
        {"name": "no tutorials yet", "shown": 0, "started": 0, "completed": 0, "steps": []}
    ]
    heights = [1.2 + 0.32 * (len(t["steps"]) + 3) for t in tutorials]
    fig, axes = plt.subplots(
        len(tutorials), 1, figsize=(8, sum(heights)), squeeze=False, height_ratios=heights
    )
    for ax, t in zip(axes[:, 0], tutorials, strict=True):
        labels = ["shown", "started"] + [f"step {s['step']}" for s in t["steps"]] + ["completed"]
        values = [t["shown"], t["started"]] + [s["reached"] for s in t["steps"]] + [t["completed"]]
        y = range(len(labels))
        ax.barh(list(y), values, color="#3b6ea5")
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.invert_yaxis()
        top = max(values, default=0) or 1
        for i, value in enumerate(values):
            ax.text(value + top * 0.01, i, str(value), va="center", fontsize=8)
        ax.set_xlim(0, top * 1.12)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(f"{t['name']}: completion {_percent(t.get('completion_rate'))}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _stages(doc: dict[str, Any]) -> str:
    return (
        f"shown {doc['shown']} → started {doc['started']} → completed {doc['completed']} "
        f"({_percent(doc['completion_rate'])})"
    )


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%"

"""Draw docs/assets/social-card.png, the image link previews show (og:image, 1200x630).

Run again after changing the wording: `.venv/bin/python tools/docs/make_social_card.py`.
Needs matplotlib (the `charts` extra).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

OUT = Path(__file__).resolve().parents[2] / "docs" / "assets" / "social-card.png"
INDIGO = "#3f51b5"


def main() -> None:
    fig = plt.figure(figsize=(12, 6.3), dpi=100)
    fig.patch.set_facecolor("#1e2129")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, 1200)
    ax.set_ylim(0, 630)
    ax.add_patch(plt.Rectangle((0, 0), 24, 630, color=INDIGO))
    ax.text(90, 430, "$ axctl find", fontsize=40, family="monospace", color="#9fa8da")
    ax.text(90, 290, "axd", fontsize=110, weight="bold", color="white")
    ax.text(90, 190, "A resident developer daemon for Linux", fontsize=34, color="#e8eaf6")
    ax.text(
        90,
        110,
        "warm code search · supervised plugins · monitoring · telemetry",
        fontsize=24,
        color="#c5cae9",
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=100, facecolor=fig.get_facecolor())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

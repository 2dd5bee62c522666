"""Stack samples: collecting them in-process, and rendering them as collapsed text,
speedscope JSON or an SVG flamegraph. Stdlib only: the plugin host uses it too."""

from __future__ import annotations

import html
import json
import os
import sys
import threading
import time
from collections import Counter
from types import FrameType
from typing import Any

Stacks = Counter[str]  # "outer;inner;leaf" -> samples


def frame_label(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_name} ({os.path.basename(code.co_filename)}:{frame.f_lineno})"


def stack_of(frame: FrameType | None) -> str:
    labels = []
    while frame is not None:
        labels.append(frame_label(frame))
        frame = frame.f_back
    return ";".join(reversed(labels))


def sample(seconds: float, rate: float, thread_ids: set[int] | None = None) -> Stacks:
    """Sample the stacks of `thread_ids` (all other threads when None) with
    sys._current_frames(): the fallback when py-spy cannot attach."""
    me = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    stacks: Stacks = Counter()
    interval = 1.0 / rate
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        for ident, frame in sys._current_frames().items():
            if ident == me or (thread_ids is not None and ident not in thread_ids):
                continue
            stacks[f"{names.get(ident, ident)};{stack_of(frame)}"] += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    return stacks


def collapsed(stacks: Stacks) -> str:
    return "".join(f"{stack} {count}\n" for stack, count in stacks.most_common())


def parse_collapsed(text: str) -> Stacks:
    stacks: Stacks = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def speedscope(stacks: Stacks, name: str) -> str:
    frames: dict[str, int] = {}
    samples, weights = [], []
    for stack, count in stacks.items():
        samples.append([frames.setdefault(f, len(frames)) for f in stack.split(";")])
        weights.append(count)
    return json.dumps(
        {
            "$schema": "https://www.speedscope.app/file-format-schema.json",
            "shared": {"frames": [{"name": f} for f in frames]},
            "profiles": [
                {
                    "type": "sampled",
                    "name": name,
                    "unit": "none",
                    "startValue": 0,
                    "endValue": sum(weights),
                    "samples": samples,
                    "weights": weights,
                }
            ],
            "name": name,
            "exporter": "axd",
        }
    )


def top_functions(stacks: Stacks, n: int = 20) -> list[dict[str, Any]]:
    """Hottest functions: `self` (the leaf) and `total` (anywhere on the stack) samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    all_samples = sum(stacks.values()) or 1
    for stack, count in stacks.items():
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    return [
        {
            "function": f,
            "self": c,
            "self_pct": round(100 * c / all_samples, 1),
            "total": total[f],
            "total_pct": round(100 * total[f] / all_samples, 1),
        }
        for f, c in own.most_common(n)
    ]


def flamegraph_svg(stacks: Stacks, title: str, width: int = 1200) -> str:
    """A self-contained SVG flamegraph (hover a box for its function and samples)."""
    root: dict[str, Any] = {"n": 0, "c": {}}
    for stack, count in stacks.items():
        node = root
        node["n"] += count
        for frame in stack.split(";"):
            node = node["c"].setdefault(frame, {"n": 0, "c": {}})
            node["n"] += count
    total = root["n"] or 1
    row = 17
    rects: list[str] = []
    depth_max = 0

    def draw(node: dict[str, Any], x: float, depth: int) -> None:
        nonlocal depth_max
        for name, child in sorted(node["c"].items()):
            w = child["n"] / total * width
            if w >= 0.3:
                depth_max = max(depth_max, depth)
                hue = (hash(name.split(" ")[0]) % 60) + 10
                label = html.escape(name if w > 7 * len(name) else name[: max(0, int(w / 7) - 2)])
                rects.append(
                    f"<g><title>{html.escape(name)} ({child['n']} samples, "
                    f"{100 * child['n'] / total:.1f}%)</title>"
                    f'<rect x="{x:.1f}" y="{{Y{depth}}}" width="{w:.1f}" height="{row - 1}" '
                    f'fill="hsl({hue},80%,60%)"/><text x="{x + 2:.1f}" y="{{T{depth}}}" '
                    f'font-size="11" font-family="monospace">{label}</text></g>'
                )
                draw(child, x, depth + 1)
            x += w

    draw(root, 0.0, 0)
    height = (depth_max + 3) * row
    body = "\n".join(rects)
    for depth in range(depth_max + 1):
        y = height - (depth + 2) * row
        body = body.replace(f"{{Y{depth}}}", str(y)).replace(f"{{T{depth}}}", str(y + 12))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<text x="4" y="14" font-size="13" font-family="sans-serif">'
        f"{html.escape(title)} - {root['n']} samples</text>\n{body}</svg>\n"
    )

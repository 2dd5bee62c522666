"""`axctl perf sweep`: score BM25F configurations on a relevance set against the live index.

Every configuration is applied per query (the search API's `ranking` override), so a
sweep neither rewrites the config nor disturbs other clients; only `--apply` changes the
configuration, through `axctl config set`.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path
from typing import Any

from axd.perf.stats import summarize
from axd.shared.transport import Client

FIELDS = ("name", "qualname", "path", "signature", "doc", "body")


def load_set(path: str) -> list[dict[str, Any]]:
    doc = json.loads(Path(path).read_text())
    queries = doc["queries"] if isinstance(doc, dict) else doc
    for q in queries:
        if not {"query", "path", "start_line"} <= set(q):
            raise ValueError(f"{path}: every query needs query, path and start_line")
    return queries


def configurations(
    current: dict[str, Any], k1s: list[float], bs: list[float], weight_sets: list[dict[str, float]]
) -> list[dict[str, Any]]:
    """The current configuration first, then the grid (at least five in all)."""
    grid = [
        {"k1": k1, "b": b, "weights": {**current["weights"], **w}}
        for k1, b, w in itertools.product(k1s, bs, weight_sets or [{}])
    ]
    configs = [current] + [c for c in grid if c != current]
    return configs


def evaluate(
    client: Client,
    workspace: str,
    queries: list[dict[str, Any]],
    ranking: dict[str, Any],
    limit: int = 10,
) -> dict[str, Any]:
    rr, ndcg, hits, took = 0.0, 0.0, 0, []
    for q in queries:
        t = time.perf_counter()
        resp = client.request(
            "POST",
            "/v1/search",
            {
                "query": q["query"],
                "path": workspace,
                "limit": limit,
                "cache": False,
                "ranking": ranking,
            },
        )
        took.append((time.perf_counter() - t) * 1000)
        if resp.status != 200:
            raise RuntimeError(f"search {q['query']!r}: HTTP {resp.status}: {resp.body[:200]!r}")
        for rank, r in enumerate(resp.json()["results"], start=1):
            if r["path"] == q["path"] and r["start_line"] == q["start_line"]:
                rr += 1 / rank
                ndcg += 1 / math.log2(rank + 1)  # one relevant answer: the ideal DCG is 1
                hits += 1
                break
    n = len(queries) or 1
    latency = summarize(took)
    return {
        "mrr": round(rr / n, 4),
        "ndcg": round(ndcg / n, 4),
        "recall": round(hits / n, 4),
        "p50_ms": latency["p50"],
        "p95_ms": latency["p95"],
    }


def chart(rows: list[dict[str, Any]], path: str) -> None:
    """A bar chart of MRR@10, nDCG@10 and Recall@10 per configuration (PNG or SVG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("the chart needs matplotlib: pip install 'axd[charts]'") from None
    labels = [r["label"] for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows)), 4.5))
    for offset, key, name in (
        (-0.27, "mrr", "MRR@10"),
        (0, "ndcg", "nDCG@10"),
        (0.27, "recall", "Recall@10"),
    ):
        ax.bar([i + offset for i in x], [r[key] for r in rows], width=0.27, label=name)
    ax.set_xticks(list(x), labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title("BM25F configurations (first: current)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def label(config: dict[str, Any], current: dict[str, Any]) -> str:
    parts = [f"k1={config['k1']:g}", f"b={config['b']:g}"]
    changed = {k: v for k, v in config["weights"].items() if current["weights"].get(k) != v}
    parts += [f"{k}={v:g}" for k, v in changed.items()]
    return " ".join(parts)


def parse_weights(spec: str) -> list[dict[str, float]]:
    """`name=8,body=1;name=3` -> two weight variants."""
    variants = []
    for chunk in spec.split(";"):
        variant = {}
        for pair in chunk.split(","):
            if not pair.strip():
                continue
            key, _, value = pair.partition("=")
            if key.strip() not in FIELDS:
                raise ValueError(f"unknown field {key.strip()!r}; fields: {', '.join(FIELDS)}")
            variant[key.strip()] = float(value)
        variants.append(variant)
    return variants

"""`axctl perf run|compare|sweep|inspect`: benchmarks, regression gates, BM25 sweeps and
sampling profiles. The heavy parts are imported only when one of these runs."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from axctl import output
from axctl.commands.common import json_option, pass_session
from axctl.errors import EXIT_USAGE, CliError
from axctl.session import Session

DEFAULT_MANIFEST = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "bench",
    "workloads",
    "default.toml",
)


@click.group()
def perf() -> None:
    """Benchmarks with regression gates, BM25 sweeps and profiles of the live daemon."""


@perf.command("run")
@click.argument("manifest", required=False, default=DEFAULT_MANIFEST)
@click.option(
    "-w",
    "--workload",
    "workloads",
    multiple=True,
    metavar="NAME",
    help="Run only these workloads (repeatable).",
)
@click.option("-o", "--out", metavar="FILE", help="Write the result document here.")
@click.option(
    "--baseline", metavar="FILE", help="Compare with this result; exit 1 on a regression."
)
@json_option
def perf_run(
    manifest: str, workloads: tuple[str, ...], out: str | None, baseline: str | None, as_json: bool
) -> None:
    """Run the workloads of MANIFEST (default: bench/workloads/default.toml) against a
    private daemon, and summarize each (P50/P95/P99, mean, min, max, stdev, throughput).

    With --baseline, each workload is gated: a regression must exceed its guardrail and
    the run-to-run spread. Exit status 1 on a regression, 0 otherwise.
    """
    from axd.perf import harness, stats

    try:
        plan = harness.load_manifest(manifest)
    except harness.ManifestError as exc:
        raise CliError(str(exc), code="invalid_manifest", as_json=as_json) from None
    unknown = set(workloads) - {w.name for w in plan.workloads}
    if unknown:
        raise CliError(
            f"no workload {', '.join(sorted(unknown))} in {manifest}",
            hint="known: " + ", ".join(w.name for w in plan.workloads),
            code="unknown_workload",
            exit_code=EXIT_USAGE,
            as_json=as_json,
        )
    bench = harness.Harness(
        progress=lambda m: click.echo(m, err=True), corpus_files=plan.corpus_files
    )
    try:
        bench.start()
        doc = bench.run(plan, set(workloads) or None)
    except RuntimeError as exc:
        raise CliError(
            f"benchmark failed: {exc}",
            hint=f"the daemon's log: {harness.daemon_log_file(str(bench.home.state_dir))}",
            as_json=as_json,
        ) from None
    finally:
        bench.stop()
    if out:
        harness.write(doc, out)
    regressed = False
    rows: list[dict[str, Any]] = []
    if baseline:
        base = _load(baseline, as_json)
        rows, regressed = stats.compare(base, doc)
    if as_json:
        output.emit_json(
            {**doc, **({"comparison": rows, "regressed": regressed} if baseline else {})}
        )
    else:
        click.echo(_summary(doc))
        if baseline:
            click.echo("\n" + stats.table(rows))
        if out:
            click.echo(f"\nwrote {out}", err=True)
    if regressed:
        sys.exit(1)


@perf.command("compare")
@click.argument("base")
@click.argument("new")
@json_option
def perf_compare(base: str, new: str, as_json: bool) -> None:
    """Gate NEW against BASE (two `perf run` results); exit 1 on a regression."""
    from axd.perf import stats

    rows, regressed = stats.compare(_load(base, as_json), _load(new, as_json))
    if as_json:
        output.emit_json({"comparison": rows, "regressed": regressed})
    else:
        click.echo(stats.table(rows))
    if regressed:
        sys.exit(1)


@perf.command("sweep")
@click.option(
    "--set",
    "relevance",
    required=True,
    metavar="FILE",
    help="Relevance set JSON (queries with their expected path and start_line).",
)
@click.option(
    "-w",
    "--workspace",
    metavar="PATH",
    required=True,
    help="The indexed workspace the relevance set is about.",
)
@click.option("--k1", default="0.6,1.2,1.8", show_default=True, metavar="LIST")
@click.option("--b", "bs", default="0.3,0.75", show_default=True, metavar="LIST")
@click.option(
    "--weights",
    default="",
    metavar="SPEC",
    help="Weight variants: `name=8,body=1;name=3,doc=2` (others as configured).",
)
@click.option("--chart", metavar="FILE", help="Write a PNG or SVG chart (needs matplotlib).")
@click.option(
    "--apply",
    "apply_best",
    is_flag=True,
    help="Apply the best configuration (by MRR@10, then nDCG@10) live.",
)
@json_option
@pass_session
def perf_sweep(
    session: Session,
    relevance: str,
    workspace: str,
    k1: str,
    bs: str,
    weights: str,
    chart: str | None,
    apply_best: bool,
    as_json: bool,
) -> None:
    """Score BM25F configurations (at least five) on a relevance set: MRR@10, nDCG@10,
    Recall@10 and latency, each beside the configuration in force."""
    from axd.perf import sweep

    try:
        queries = sweep.load_set(relevance)
        variants = sweep.parse_weights(weights) if weights else [{}]
        k1s = [float(x) for x in k1.split(",") if x]
        b_list = [float(x) for x in bs.split(",") if x]
    except (OSError, ValueError) as exc:
        raise CliError(f"bad sweep input: {exc}", exit_code=EXIT_USAGE, as_json=as_json) from None
    cfg = session.call("GET", "/v1/config")["values"]
    current = {
        "k1": cfg["codeintel.bm25.k1"],
        "b": cfg["codeintel.bm25.b"],
        "weights": {f: cfg[f"codeintel.weights.{f}"] for f in sweep.FIELDS},
    }
    configs = sweep.configurations(current, k1s, b_list, variants)
    if len(configs) < 5:
        raise CliError(
            f"only {len(configs)} configurations; give more --k1/--b values",
            exit_code=EXIT_USAGE,
            as_json=as_json,
        )
    root = os.path.abspath(workspace)
    rows = []
    for i, config in enumerate(configs, 1):
        click.echo(f"[{i}/{len(configs)}] {sweep.label(config, current) or 'current'}", err=True)
        scores = sweep.evaluate(session.client(60), root, queries, config)
        rows.append(
            {
                "label": sweep.label(config, current) if i > 1 else "current",
                "config": config,
                **scores,
            }
        )
    base = rows[0]
    for row in rows:
        row["mrr_delta"] = round(row["mrr"] - base["mrr"], 4)
    best = max(rows, key=lambda r: (r["mrr"], r["ndcg"]))
    if chart:
        try:
            sweep.chart(rows, chart)
        except RuntimeError as exc:
            raise CliError(str(exc), as_json=as_json) from None
    applied = None
    if apply_best and best is not base:
        for key, value in (
            ("codeintel.bm25.k1", best["config"]["k1"]),
            ("codeintel.bm25.b", best["config"]["b"]),
            *((f"codeintel.weights.{f}", v) for f, v in best["config"]["weights"].items()),
        ):
            session.call("POST", "/v1/config/set", {"key": key, "value": str(value)})
        applied = best["config"]
    if as_json:
        output.emit_json(
            {
                "queries": len(queries),
                "rows": rows,
                "best": best["label"],
                "applied": applied,
                "chart": chart,
            }
        )
        return
    click.echo(
        output.table(
            [("CONFIG", "MRR@10", "nDCG@10", "RECALL@10", "P50 MS", "VS CURRENT")]
            + [
                (
                    r["label"],
                    r["mrr"],
                    r["ndcg"],
                    r["recall"],
                    r["p50_ms"],
                    f"{r['mrr_delta']:+.4f}",
                )
                for r in rows
            ]
        )
    )
    click.echo(f"best: {best['label']} ({len(queries)} queries)" + ("; applied" if applied else ""))


@perf.command("inspect")
@click.option("--plugin", metavar="NAME", help="Profile this plugin.")
@click.option("--daemon", "daemon_flag", is_flag=True, help="Profile the daemon (default).")
@click.option("--seconds", default=5.0, show_default=True, type=float)
@click.option("--rate", default=100, show_default=True, type=int, metavar="HZ")
@click.option(
    "--format",
    "fmt",
    default="flamegraph",
    show_default=True,
    type=click.Choice(["flamegraph", "speedscope", "collapsed"]),
)
@click.option(
    "--sampler", default="auto", show_default=True, type=click.Choice(["auto", "py-spy", "builtin"])
)
@click.option("-o", "--output", "out", metavar="FILE", help="Where to write the profile.")
@click.option("--top", is_flag=True, help="Live view of the hottest functions instead.")
@json_option
@pass_session
def perf_inspect(
    session: Session,
    plugin: str | None,
    daemon_flag: bool,
    seconds: float,
    rate: int,
    fmt: str,
    sampler: str,
    out: str | None,
    top: bool,
    as_json: bool,
) -> None:
    """A sampling profile of the live daemon or of a plugin (py-spy where it can attach,
    an in-process sampler otherwise; the output says which)."""
    if plugin and daemon_flag:
        raise CliError(
            "choose --plugin NAME or --daemon", code="usage", exit_code=EXIT_USAGE, as_json=as_json
        )
    body: dict[str, Any] = {"seconds": seconds, "rate": rate, "format": fmt, "sampler": sampler}
    if plugin:
        body["plugin"] = plugin
    if top:
        _top(session, body, as_json)
        return
    doc = session.call("POST", "/v1/perf/profile", body, timeout=seconds + 120)
    target = plugin or "daemon"
    ext = {"flamegraph": "svg", "speedscope": "speedscope.json", "collapsed": "txt"}[fmt]
    path = out or f"axd-profile-{target}-{time.strftime('%Y%m%d-%H%M%S')}.{ext}"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(doc["content"])
    summary = {k: v for k, v in doc.items() if k not in ("content", "top")}
    summary["output"] = os.path.abspath(path)
    if as_json:
        output.emit_json(summary)
        return
    click.echo(
        f"wrote {path}: {fmt} of {target}, {seconds:g}s at {rate} Hz, sampler {doc['sampler']}"
    )
    if doc.get("note"):
        click.echo(f"note: {doc['note']}", err=True)
    hint = {
        "flamegraph": "open it in a browser",
        "speedscope": "drop it on https://www.speedscope.app",
        "collapsed": "feed it to flamegraph.pl or speedscope",
    }[fmt]
    click.echo(f"hint: {hint}")


def _top(session: Session, body: dict[str, Any], as_json: bool) -> None:
    """Refresh a table of the hottest functions (one sampling round at a time)."""
    interactive = sys.stdout.isatty() and not as_json
    body = {
        **body,
        "format": "collapsed",
        "sampler": "builtin",
        "seconds": min(float(body["seconds"]), 2.0) if interactive else body["seconds"],
    }
    from axctl.stops import stoppable  # signal stays off the start-up path

    with stoppable():
        while True:
            doc = session.call("POST", "/v1/perf/profile", body, timeout=120)
            rows = doc.get("top", [])
            if as_json:
                output.emit_json({"top": rows, "samples": doc.get("samples")})
            else:
                if interactive:
                    click.echo("\033[2J\033[H", nl=False)
                click.echo(
                    f"hottest functions ({doc.get('samples')} samples, "
                    f"{body['seconds']:g}s at {body['rate']} Hz; Ctrl-C to stop)"
                )
                click.echo(
                    output.table(
                        [("SELF%", "TOTAL%", "FUNCTION")]
                        + [
                            (f"{r['self_pct']:.1f}", f"{r['total_pct']:.1f}", r["function"])
                            for r in rows
                        ]
                    )
                )
            if not interactive:
                return


def _load(path: str, as_json: bool) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read result {path}: {exc}", as_json=as_json) from None


def _summary(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    head = (
        f"{doc['manifest']['name']}: {m['cpu']}, {m['cores']} cores, python {m['python']}, "
        f"commit {(doc.get('git') or '-')[:12]}, {doc['took_s']}s"
    )
    rows = [("WORKLOAD", "P50", "P95", "P99", "MEAN", "STDEV", "N", "THROUGHPUT", "EXTRA")]
    for name, w in doc["workloads"].items():
        unit = w.get("unit", "ms")
        extra = {
            k: v
            for k, v in w.items()
            if k
            not in (
                "kind",
                "guardrail",
                "unit",
                "samples",
                "p50",
                "p95",
                "p99",
                "mean",
                "min",
                "max",
                "stdev",
                "throughput_per_s",
            )
        }
        rate = w.get("throughput_per_s")
        rows.append(
            (
                name,
                *(f"{w[k]:.3f} {unit}" for k in ("p50", "p95", "p99", "mean", "stdev")),
                w["samples"],
                f"{rate:g}/s" if rate else "-",
                output.fields(extra),
            )
        )
    return head + "\n" + output.table(rows)

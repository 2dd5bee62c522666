// axd dashboard: the last minutes from /api/snapshot, then live samples, events and alert
// changes from /api/stream (server-sent events). Charts are uPlot (vendored, no network).
"use strict";

const KEEP = 600; // samples on the charts (ten minutes at one a second)
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const palette = () => ["--s1", "--s2", "--s3", "--s4", "--s5", "--s6"].map(css);
const $ = (id) => document.getElementById(id);

const state = { times: [], samples: [], plugins: [], charts: {}, count: 0 };

// ---- the charts -----------------------------------------------------------------------

const CHARTS = [
  { id: "chart-latency", series: [
      ["p50", (v) => v["search.latency.p50"]],
      ["p95", (v) => v["search.latency.p95"]],
      ["p99", (v) => v["search.latency.p99"]] ] },
  { id: "chart-throughput", series: [
      ["searches/s", (v) => v["search.rate"]],
      ["cache hit %", (v) => pct(v["search.cache.hit_rate"])] ] },
  { id: "chart-errors", series: [
      ["5xx %", (v) => pct(v["api.error_rate"])],
      ["requests/s", (v) => v["api.rate"]] ] },
  { id: "chart-index", series: [
      ["lag s", (v) => v["index.lag_s"]],
      ["MB/s", (v) => v["index.rate_mb_s"]] ] },
  { id: "chart-plugin-cpu", perPlugin: (v, p) =>
      share(v[`plugin.cpu_percent{plugin="${p}"}`], v[`plugin.cpu_budget_percent{plugin="${p}"}`]) },
  { id: "chart-plugin-mem", perPlugin: (v, p) => pct(v[`plugin.memory_budget_fraction{plugin="${p}"}`]) },
];

function pct(x) { return x == null ? null : Math.round(x * 1000) / 10; }
function share(used, budget) { return used == null || !budget ? null : Math.round(used / budget * 1000) / 10; }

function seriesOf(spec) {
  if (!spec.perPlugin) return spec.series;
  return state.plugins.map((p) => [p, (v) => spec.perPlugin(v, p)]);
}

function build(spec) {
  const el = $(spec.id);
  const colors = palette();
  const series = seriesOf(spec);
  const opts = {
    width: Math.max(260, el.clientWidth),
    height: 180,
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    axes: [
      { stroke: css("--muted"), grid: { stroke: css("--line") }, ticks: { stroke: css("--line") } },
      { stroke: css("--muted"), grid: { stroke: css("--line") }, ticks: { stroke: css("--line") }, size: 50 },
    ],
    series: [{}, ...series.map(([label], i) => ({ label, stroke: colors[i % colors.length], width: 1.5, spanGaps: true }))],
  };
  if (state.charts[spec.id]) state.charts[spec.id].plot.destroy();
  el.textContent = "";
  const plot = new uPlot(opts, dataFor(spec, series), el);
  state.charts[spec.id] = { plot, series };
  el.dataset.points = String(state.times.length);
}

function dataFor(spec, series) {
  return [state.times, ...series.map(([, pick]) => state.samples.map((v) => pick(v) ?? null))];
}

function redraw() {
  for (const spec of CHARTS) {
    const chart = state.charts[spec.id];
    if (!chart) { build(spec); continue; }
    chart.plot.setData(dataFor(spec, chart.series));
    $(spec.id).dataset.points = String(state.times.length);
  }
}

function resize() {
  for (const spec of CHARTS) {
    const chart = state.charts[spec.id];
    if (chart) chart.plot.setSize({ width: Math.max(260, $(spec.id).clientWidth), height: 180 });
  }
}

// ---- data -----------------------------------------------------------------------------

function addSample(sample) {
  state.times.push(sample.ts);
  state.samples.push(sample.values);
  if (state.times.length > KEEP) { state.times.shift(); state.samples.shift(); }
  state.count += 1;
  document.body.dataset.samples = String(state.count);
  const plugins = Object.keys(sample.values)
    .filter((k) => k.startsWith("plugin.up{"))
    .map((k) => k.slice(k.indexOf('"') + 1, k.lastIndexOf('"'))).sort();
  if (plugins.join() !== state.plugins.join()) {
    state.plugins = plugins;
    for (const spec of CHARTS) if (spec.perPlugin) build(spec);
  }
  pluginTable(sample.values);
}

function fmtBytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function num(x, digits = 1) { return x == null ? "–" : Number(x).toFixed(digits); }

function pluginTable(v) {
  const body = $("plugins").tBodies[0];
  body.textContent = "";
  for (const p of state.plugins) {
    const get = (name) => v[`${name}{plugin="${p}"}`];
    const row = body.insertRow();
    const cells = [p, get("plugin.up") ? "yes" : "no", num(get("plugin.cpu_percent")),
      num(get("plugin.cpu_budget_percent"), 0), fmtBytes(get("plugin.memory_bytes")),
      fmtBytes(get("plugin.memory_budget_bytes")), num(get("plugin.throttled_s"), 2),
      num(get("plugin.restarts"), 0), num(get("plugin.reloads"), 0), num(get("plugin.rpc.p95_ms"), 2)];
    for (const text of cells) row.insertCell().textContent = text;
  }
}

function showAlerts(doc) {
  const list = $("alerts");
  list.textContent = "";
  const shown = (doc && doc.alerts || []).filter((a) => a.state !== "inactive");
  const firing = shown.filter((a) => a.state === "firing").length;
  const count = $("alert-count");
  count.textContent = firing ? `${firing} firing` : "none firing";
  count.className = `pill ${firing ? "crit" : "ok"}`;
  if (!shown.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "no alerts";
    list.append(li);
    return;
  }
  for (const a of shown) {
    const li = document.createElement("li");
    const labels = Object.entries(a.labels).map(([k, val]) => `${k}=${val}`).join(",");
    const since = a.state === "firing" ? a.firing_for_s : a.for_s;
    li.className = `sev-${a.severity}`;
    li.dataset.rule = a.rule;
    li.dataset.state = a.state;
    li.textContent = `${a.state.toUpperCase()} ${a.rule}${labels ? ` (${labels})` : ""} · ${a.summary} · ${Math.round(since)} s`;
    list.append(li);
  }
}

function addEvent(event) {
  const list = $("events");
  const li = document.createElement("li");
  li.dataset.type = event.type;
  const time = document.createElement("time");
  time.textContent = new Date(event.ts * 1000).toLocaleTimeString();
  const type = document.createElement("span");
  type.className = "type";
  type.textContent = event.type;
  const rest = Object.entries(event).filter(([k]) => k !== "ts" && k !== "type")
    .map(([k, val]) => `${k}=${typeof val === "object" ? JSON.stringify(val) : val}`).join(" ");
  li.append(time, type, document.createTextNode(rest));
  list.prepend(li);
  while (list.children.length > 100) list.lastChild.remove();
}

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = `pill ${kind}`;
  document.body.dataset.stream = kind;
}

// ---- start ----------------------------------------------------------------------------

async function start() {
  const response = await fetch("/api/snapshot", { credentials: "same-origin" });
  if (!response.ok) { setStatus(`refused (${response.status})`, "crit"); return; }
  const snap = await response.json();
  $("meta").textContent = `axd ${snap.version} · pid ${snap.pid} · a sample every ${snap.interval_s} s`;
  for (const s of snap.history) addSample(s);
  for (const spec of CHARTS) build(spec);
  showAlerts(snap.alerts);
  for (const e of snap.events) addEvent(e);
  const stream = new EventSource("/api/stream");
  stream.addEventListener("open", () => setStatus("live", "ok"));
  stream.addEventListener("error", () => setStatus("reconnecting…", "warn"));
  stream.addEventListener("sample", (m) => { addSample(JSON.parse(m.data)); redraw(); });
  stream.addEventListener("event", (m) => addEvent(JSON.parse(m.data)));
  stream.addEventListener("alerts", (m) => showAlerts(JSON.parse(m.data)));
  new ResizeObserver(resize).observe(document.querySelector("main"));
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => CHARTS.forEach(build));
}

start().catch((err) => setStatus(`error: ${err}`, "crit"));

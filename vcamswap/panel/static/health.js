// Health: the state, the figures, the chart of the last minutes, each stage's milliseconds and the checks.
"use strict";

function drawHealth(h) {
  const b = $("state");
  b.textContent = h.detail ? `${h.state}: ${h.detail}` : h.state;
  b.dataset.state = h.state;
  const fps = Number(h.fps ?? 0).toFixed(1);
  const lat = h.latency_ms !== undefined ? `${Math.round(h.latency_ms)} ms` : "–";
  $("figures").textContent = `${fps} fps · ${lat} capture to publish`;
  const rows = [
    ["fps", fps],
    ["latency", h.latency_ms !== undefined ? `${Math.round(h.latency_ms)} ms (p95 ${Math.round(h.latency_p95_ms)})` : "–"],
    ["engine", h.engine ?? "–"],
    ["camera", h.camera ? `${h.camera.status}${h.camera.width ? ` ${h.camera.width}×${h.camera.height}` : ""}` : "–"],
    ["outputs", (h.outputs || []).map((o) => `${o.name} ${o.live ? "live" : `down: ${o.error}`}`).join(", ") || "–"],
    ["frames", `${h.frames ?? 0} (swapped ${h.swapped ?? 0}, dropped ${h.dropped ?? 0})`],
  ];
  const dl = $("health");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dd.id = `health-${k}`;
    dl.append(dt, dd);
  }
}

// The chart: one sample a second from the event stream, the last few minutes kept in a ring in the page.
const CHART_SAMPLES = 180;
const CHART_MIN_SPAN = 30; // the chart spans what it has, from half a minute up to the three minutes kept
const ring = { fps: new Array(CHART_SAMPLES), ms: new Array(CHART_SAMPLES), next: 0, count: 0, total: 0 };

function addSample(h) {
  ring.fps[ring.next] = Number(h.fps ?? 0);
  ring.ms[ring.next] = Number(h.latency_ms ?? 0);
  ring.next = (ring.next + 1) % CHART_SAMPLES;
  ring.count = Math.min(ring.count + 1, CHART_SAMPLES);
  ring.total += 1;
  $("chart").dataset.samples = String(ring.total);
}

function series(values) {
  const out = [];
  for (let i = 0; i < ring.count; i++) out.push(values[(ring.next - ring.count + i + CHART_SAMPLES) % CHART_SAMPLES]);
  return out;
}

function niceMax(v) {
  const step = [5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000].find((s) => s >= v / 4) || 10000;
  return Math.max(step, Math.ceil(v / step) * step);
}

function drawChart() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const fps = series(ring.fps), ms = series(ring.ms);
  const span = Math.min(CHART_SAMPLES, Math.max(CHART_MIN_SPAN, ring.count)); // seconds across the chart
  const pad = { l: 34, r: 44, t: 8, b: 8 };
  const fpsMax = niceMax(Math.max(1, ...fps)), msMax = niceMax(Math.max(1, ...ms));
  const css = getComputedStyle(document.documentElement);
  g.font = "11px system-ui, sans-serif";
  g.strokeStyle = css.getPropertyValue("--line");
  g.fillStyle = css.getPropertyValue("--muted");
  for (const f of [0, 0.5, 1]) {
    const y = pad.t + (h - pad.t - pad.b) * (1 - f);
    g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
    g.textAlign = "right"; g.fillText(String(Math.round(fpsMax * f)), pad.l - 4, y + 4);
    g.textAlign = "left"; g.fillText(String(Math.round(msMax * f)), w - pad.r + 4, y + 4);
  }
  const line = (values, max, colour) => {
    if (values.length < 2) return;
    g.strokeStyle = colour; g.lineWidth = 1.5; g.beginPath();
    values.forEach((v, i) => {
      const x = pad.l + (w - pad.l - pad.r) * (i + span - values.length) / (span - 1);
      const y = pad.t + (h - pad.t - pad.b) * (1 - Math.min(v, max) / max);
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke(); g.lineWidth = 1;
  };
  line(fps, fpsMax, css.getPropertyValue("--ok"));
  line(ms, msMax, css.getPropertyValue("--accent"));
  $("chart-span").textContent = span < 120 ? `last ${span} s` : `last ${Math.round(span / 60)} min`;
}
window.addEventListener("resize", drawChart);

function drawStages(stageMs) {
  const body = $("stages").tBodies[0];
  body.replaceChildren();
  for (const [stage, ms] of Object.entries(stageMs || {})) {
    const tr = document.createElement("tr");
    tr.dataset.stage = stage;
    for (const text of [stage, Number(ms).toFixed(1)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
}

$("run-doctor").addEventListener("click", async () => {
  const ul = $("doctor");
  ul.replaceChildren(Object.assign(document.createElement("li"), { textContent: "checking…" }));
  const r = await fetch("api/doctor");
  const reply = await r.json().catch(() => ({ lines: [] }));
  ul.replaceChildren();
  for (const line of reply.lines || []) {
    const li = document.createElement("li");
    li.className = line.ok ? "ok" : "bad";
    li.textContent = `${line.topic}: ${line.text}${!line.ok && line.fix ? ` (fix: ${line.fix})` : ""}`;
    ul.append(li);
  }
});


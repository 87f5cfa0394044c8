// The control panel's page: every change goes to the daemon's intents (api/intent); what changes anywhere
// else (tray, hotkeys, `vcamswap ...`) arrives on the event stream (api/events) and is drawn at once.
"use strict";

const $ = (id) => document.getElementById(id);
const FRAME_GAP_MS = 66; // at most ~15 preview pictures a second: the preview never competes with the camera
let controls = {};
let source = "swap"; // what the preview shows: Swap Cam's picture, or the camera's own while compare is held
let lastFrame = 0;

function say(text, ok) {
  const m = $("message");
  m.textContent = text || "";
  m.className = ok ? "message ok" : "message";
}

async function send(cmd, arg) {
  const body = JSON.stringify(arg === undefined ? { cmd } : { cmd, arg: String(arg) });
  const r = await fetch("api/intent", { method: "POST", headers: { "Content-Type": "application/json" }, body });
  const reply = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) { say(reply.error || "refused"); return; }
  say("");
  drawControls({ ...controls, ...reply });
}

// -- controls ---------------------------------------------------------------------------------------------

function setSeg(id, value) {
  for (const b of $(id).querySelectorAll("button")) b.setAttribute("aria-checked", String(b.dataset.value === value));
}

function drawControls(c) {
  const facesChanged = JSON.stringify(c.faces) !== JSON.stringify(controls.faces) ||
    JSON.stringify(c.notes) !== JSON.stringify(controls.notes);
  controls = c;
  $("swap").checked = !!c.swap;
  setSeg("preset", c.preset);
  setSeg("targets", c.targets);
  if (document.activeElement !== $("likeness")) $("likeness").value = c.likeness;
  $("likeness-value").textContent = Number(c.likeness).toFixed(2);
  $("label").checked = c.label !== null && c.label !== undefined;
  $("label-text").textContent = c.label_text ? `"${c.label_text}"` : "";
  drawKnobs(c.knobs, c.engine);
  drawAudio(c.audio_sync);
  for (const li of $("gallery").children) li.classList.toggle("current", li.dataset.name === c.face);
  if (facesChanged && c.faces !== undefined) loadGallery();
}

$("swap").addEventListener("change", (e) => send("swap", e.target.checked ? "on" : "off"));
$("label").addEventListener("change", (e) => send("label", e.target.checked ? "on" : "off"));
$("likeness").addEventListener("input", (e) => { $("likeness-value").textContent = Number(e.target.value).toFixed(2); });
$("likeness").addEventListener("change", (e) => send("likeness", e.target.value));
function drawKnobs(k, engine) {
  if (!k) return;
  setSeg("occlusion", k.occlusion);
  if (document.activeElement !== $("enhance")) $("enhance").value = k.enhance;
  setSeg("boost", String(k.boost));
  for (const b of $("boost").querySelectorAll("button")) b.disabled = !k.boosts;
  $("boost-note").textContent = k.boosts ? "" : `(the ${engine || "current"} engine swaps at its own size)`;
  $("boost-note").className = "muted";
  $("engine-name").textContent = engine || "–";
}

function drawAudio(a) {
  if (!a) return;
  const delay = a.delay_ms !== null && a.delay_ms !== undefined ? `, ${Math.round(a.delay_ms)} ms delay` : "";
  $("audio-sync").textContent = `${a.mode ?? "off"}${delay}${a.error ? ` (${a.error})` : ""}`;
}

async function loadModels() {
  const r = await fetch("api/models");
  if (!r.ok) return;
  const body = $("models").tBodies[0];
  body.replaceChildren();
  for (const m of (await r.json()).models) {
    const tr = document.createElement("tr");
    tr.dataset.model = m.name;
    const cells = [m.role ? `${m.name} (${m.role})` : m.name, m.installed ? "installed" : m.state, m.licence];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === 1 && !m.installed) td.className = "missing";
      tr.append(td);
    });
    body.append(tr);
  }
}

$("enhance").addEventListener("change", (e) => send("enhance", e.target.value));
for (const id of ["preset", "targets", "occlusion", "boost"]) {
  $(id).addEventListener("click", (e) => { if (e.target.dataset.value) send(id, e.target.dataset.value); });
}

// -- faces ------------------------------------------------------------------------------------------------

async function loadGallery() {
  const r = await fetch("api/state");
  if (!r.ok) return;
  const state = await r.json();
  const ul = $("gallery");
  // A face's tried-on still stays over its card when the gallery is drawn again (a control's event).
  const tried = new Map();
  for (const li of ul.children) {
    const over = li.querySelector(".tried");
    if (over) tried.set(li.dataset.name, [over, li.dataset.tried]);
  }
  ul.replaceChildren();
  if (!state.gallery.length) {
    const li = document.createElement("li");
    li.className = "unusable";
    li.textContent = "No faces yet: add a photo below.";
    ul.append(li);
  }
  for (const f of state.gallery) {
    const li = card(f);
    const kept = tried.get(f.name);
    if (kept) {
      li.querySelector(".pic").append(kept[0]);
      li.dataset.tried = kept[1];
    }
    ul.append(li);
  }
  drawControls(state.controls);
}

function card(f) {
  const li = document.createElement("li");
  li.dataset.name = f.name;
  li.title = f.usable ? `Use ${f.name}` : f.note;
  if (!f.usable) li.classList.add("unusable");
  const img = document.createElement("img");
  img.alt = f.name;
  img.loading = "lazy";
  img.src = `api/faces/${encodeURIComponent(f.name)}/thumb`;
  const name = document.createElement("span");
  name.className = "fname";
  name.textContent = f.name;
  const note = document.createElement("span");
  note.className = "note";
  note.textContent = f.note;
  const pic = document.createElement("div");
  pic.className = "pic";
  pic.append(img);
  li.append(pic, name, note);
  if (f.usable) {
    const t = document.createElement("button");
    t.type = "button";
    t.className = "tryon";
    t.title = `${f.name} swapped onto the camera's current picture (a still)`;
    t.textContent = "Try on camera";
    t.addEventListener("click", (e) => { e.stopPropagation(); tryOn(f.name, li, pic, t); });
    li.append(t);
  }
  if (f.removable) {
    const x = document.createElement("button");
    x.type = "button";
    x.className = "remove";
    x.title = `Remove ${f.name} from the faces folder`;
    x.textContent = "×";
    x.addEventListener("click", (e) => { e.stopPropagation(); removeFace(f.name); });
    li.append(x);
  }
  if (f.removable) {
    const ren = document.createElement("button");
    ren.type = "button";
    ren.className = "rename";
    ren.title = `Rename ${f.name}`;
    ren.textContent = "✎";
    ren.addEventListener("click", (e) => { e.stopPropagation(); renameFace(f.name); });
    li.append(ren);
  }
  if (f.usable) li.addEventListener("click", () => send("face", f.name));
  return li;
}

async function tryOn(name, li, pic, button) {
  button.disabled = true;
  button.textContent = "trying…";
  try {
    const r = await fetch(`api/faces/${encodeURIComponent(name)}/tryon${pic.querySelector(".tried") ? "?fresh=1" : ""}`);
    if (!r.ok) {
      const reply = await r.json().catch(() => ({}));
      say(reply.error || "refused");
      return;
    }
    // The gallery may have been drawn again while the swap ran: the card on the page now is the one to mark.
    li = $("gallery").querySelector(`li[data-name="${CSS.escape(name)}"]`) || li;
    pic = li.querySelector(".pic") || pic;
    let over = pic.querySelector(".tried");
    if (!over) {
      over = document.createElement("img");
      over.className = "tried";
      over.alt = `${name} on the camera`;
      over.title = "Click to hide";
      over.addEventListener("click", (e) => { e.stopPropagation(); URL.revokeObjectURL(over.src); over.remove(); });
      pic.append(over);
    }
    const old = over.src;
    li.dataset.tried = r.headers.get("X-Frame") || "";  // marked before the still shows
    over.src = URL.createObjectURL(await r.blob());
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  } finally {
    button.disabled = false;
    button.textContent = "Try on camera";
  }
}

async function renameFace(name) {
  const to = prompt(`New name for ${name}:`, name);
  if (to === null || to.trim() === "" || to.trim() === name) return;
  const r = await fetch(`api/faces/${encodeURIComponent(name)}/rename`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: to.trim() }) });
  const reply = await r.json().catch(() => ({}));
  say(r.ok ? `renamed ${name} to ${reply.name}` : reply.error || "refused", r.ok);
  loadGallery();
}

async function removeFace(name) {
  if (!confirm(`Remove the photo ${name} from the faces folder?`)) return;
  const r = await fetch(`api/faces/${encodeURIComponent(name)}`, { method: "DELETE" });
  const reply = await r.json().catch(() => ({}));
  say(r.ok ? `removed ${name}` : reply.error || "refused", r.ok);
  loadGallery();
}

$("upload").addEventListener("submit", async (e) => {
  e.preventDefault();
  say("adding…", true);
  const r = await fetch("api/faces", { method: "POST", body: new FormData($("upload")) });
  const reply = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) { say(reply.error || "refused"); return; }
  say(`added ${reply.name}`, true);
  $("upload").reset();
  loadGallery();
});

// -- preview ----------------------------------------------------------------------------------------------

async function previewLoop() {
  for (;;) {
    const started = performance.now();
    try {
      const r = await fetch(`api/frame?src=${source}&after=${lastFrame}`);
      if (r.status === 200) {
        lastFrame = Number(r.headers.get("X-Frame")) || lastFrame;
        const url = URL.createObjectURL(await r.blob());
        const img = $("preview");
        const old = img.src;
        img.src = url;
        img.dataset.frame = String(lastFrame);
        img.dataset.source = r.url.includes("src=camera") ? "camera" : "swap";
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        $("frame-no").textContent = `frame ${lastFrame}`;
      } else if (r.status === 403) {
        say("the panel lost its token: open it again with 'vcamswap panel'");
        return;
      }
    } catch (err) {
      await new Promise((ok) => setTimeout(ok, 1000)); // the daemon is restarting or gone
    }
    const wait = FRAME_GAP_MS - (performance.now() - started);
    if (wait > 0) await new Promise((ok) => setTimeout(ok, wait));
  }
}

function compare(on) {
  source = on ? "camera" : "swap";
  lastFrame = 0; // the next picture comes at once, from the other source
  $("compare").classList.toggle("held", on);
  $("showing").textContent = on ? "camera" : "Swap Cam";
  $("showing").classList.toggle("camera", on);
}
const cmp = $("compare");
cmp.addEventListener("pointerdown", (e) => { cmp.setPointerCapture(e.pointerId); compare(true); });
for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) cmp.addEventListener(ev, () => compare(false));
cmp.addEventListener("keydown", (e) => { if ((e.key === " " || e.key === "Enter") && !e.repeat) compare(true); });
cmp.addEventListener("keyup", () => compare(false));

// -- keyboard ---------------------------------------------------------------------------------------------

// The page's own shortcuts (the daemon's global hotkeys are separate): each sends the same intent as its control.
const KEYS = {
  " ": () => send("toggle"),
  "1": () => send("preset", "fast"),
  "2": () => send("preset", "balanced"),
  "3": () => send("preset", "quality"),
  n: () => send("face", "next"),
  p: () => send("face", "prev"),
};
const TEXT_INPUTS = new Set(["text", "search", "number", "email", "password", "url", "tel", "file"]);

function typing(el) {
  if (!el) return false;
  const tag = el.tagName;
  return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable ||
    (tag === "INPUT" && TEXT_INPUTS.has(el.type));
}

document.addEventListener("keydown", (e) => {
  if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey || e.target === cmp) return;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (key === "c") {
    e.preventDefault();
    if (!e.repeat) compare(true);
    return;
  }
  const act = KEYS[key];
  if (!act) return;
  e.preventDefault(); // Space must not also press the button or tick the box that has the focus
  if (!e.repeat) act();
});
document.addEventListener("keyup", (e) => {
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (key === "c" && source === "camera" && e.target !== cmp) compare(false);
  if (key === " " && !typing(e.target) && e.target !== cmp) e.preventDefault();
});
window.addEventListener("blur", () => { if (source === "camera") compare(false); }); // C let go elsewhere

// -- health -----------------------------------------------------------------------------------------------

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

// -- start ------------------------------------------------------------------------------------------------

const events = new EventSource("api/events");
events.addEventListener("controls", (e) => drawControls(JSON.parse(e.data)));
events.addEventListener("health", (e) => {
  const h = JSON.parse(e.data);
  drawHealth(h);
  addSample(h);
  drawChart();
  drawStages(h.stage_ms);
});
loadGallery();
loadModels();
previewLoop();

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
  $("preview-window").checked = !!c.preview;
  drawActions(c);
  drawKnobs(c.knobs, c.engine);
  drawAudio(c.audio_sync);
  drawSelects(c);
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

$("enhance").addEventListener("change", (e) => send("enhance", e.target.value));
for (const id of ["preset", "targets", "occlusion", "boost"]) {
  $(id).addEventListener("click", (e) => { if (e.target.dataset.value) send(id, e.target.dataset.value); });
}
$("preview-window").addEventListener("change", (e) => send("preview", e.target.checked ? "on" : "off"));

// -- pause, real face, stop -------------------------------------------------------------------------------

function drawActions(c) {
  const p = $("pause");
  p.textContent = c.paused ? "Resume camera" : "Pause camera";
  p.setAttribute("aria-pressed", String(!!c.paused));
  $("bypass").classList.toggle("held", !!c.bypass);
}

function togglePause() { send(controls.paused ? "resume" : "pause"); }

// Real face while held, as the global hotkey: let go (button, key, window, page) and the swap is back.
let bypassHeld = false;
function holdBypass(on) {
  if (on === bypassHeld) return;
  bypassHeld = on;
  $("bypass").classList.toggle("held", on);
  send("bypass", on ? "on" : "off");
}

function stopDaemon() {
  if (!confirm("Stop the daemon? Swap Cam stops, and this panel with it.")) return;
  send("stop").then(() => {
    if (controls.stopping) {
      say("the daemon is stopping; start it again with 'vcamswap daemon'", true);
      $("state").textContent = "stopped";
      $("state").dataset.state = "off";
    }
  });
}

$("pause").addEventListener("click", togglePause);
$("stop").addEventListener("click", stopDaemon);
const byp = $("bypass");
byp.addEventListener("pointerdown", (e) => { byp.setPointerCapture(e.pointerId); holdBypass(true); });
for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) byp.addEventListener(ev, () => holdBypass(false));
byp.addEventListener("keydown", (e) => { if ((e.key === " " || e.key === "Enter") && !e.repeat) holdBypass(true); });
byp.addEventListener("keyup", () => holdBypass(false));
window.addEventListener("pagehide", () => {
  if (!bypassHeld) return; // the page goes away with the button held: let go on the way out
  fetch("api/intent", { method: "POST", keepalive: true, headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ cmd: "bypass", arg: "off" }) });
});

// -- lists (engine, model): drawn only for what the daemon offers --------------------------------------------

function drawSelects(c) {
  const box = $("selects");
  const offered = c.selects || {};
  for (const el of [...box.children]) if (!(el.dataset.intent in offered)) el.remove();
  for (const [name, options] of Object.entries(offered)) {
    let field = box.querySelector(`[data-intent="${CSS.escape(name)}"]`);
    if (!field) {
      field = document.createElement("label");
      field.className = "field";
      field.dataset.intent = name;
      const select = document.createElement("select");
      select.addEventListener("change", () => send(name, select.value));
      field.append(Object.assign(document.createElement("span"), { className: "name", textContent: name }), select);
      box.append(field);
    }
    const select = field.querySelector("select");
    if (select.dataset.options !== options.join("\n")) {
      select.replaceChildren(...options.map((o) => new Option(o, o)));
      select.dataset.options = options.join("\n");
    }
    if (document.activeElement !== select) select.value = c[name];
  }
  $("engine-note").hidden = "engine" in offered;
}


// The page's keys and its start: the event stream, the gallery, the models and the preview.
"use strict";

// -- keyboard ---------------------------------------------------------------------------------------------

// The page's own shortcuts (the daemon's global hotkeys are separate): each sends the same intent as its control.
const KEYS = {
  " ": () => send("toggle"),
  "1": () => send("preset", "fast"),
  "2": () => send("preset", "balanced"),
  "3": () => send("preset", "quality"),
  n: () => send("face", "next"),
  p: () => send("face", "prev"),
  k: togglePause,
  w: () => send("preview", controls.preview ? "off" : "on"),
  l: () => send("label", controls.label ? "off" : "on"),
  o: () => showOutline(!outlineOn),
  q: stopDaemon,
};
// Held keys: pressed does one thing, let go undoes it.
const HELD = { c: compare, b: holdBypass };
const TEXT_INPUTS = new Set(["text", "search", "number", "email", "password", "url", "tel", "file"]);

function typing(el) {
  if (!el) return false;
  const tag = el.tagName;
  return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable ||
    (tag === "INPUT" && TEXT_INPUTS.has(el.type));
}

document.addEventListener("keydown", (e) => {
  if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey || e.target === cmp || e.target === byp) return;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (HELD[key]) {
    e.preventDefault();
    if (!e.repeat) HELD[key](true);
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
  if (key === "b" && bypassHeld && e.target !== byp) holdBypass(false);
  if (key === " " && !typing(e.target) && e.target !== cmp) e.preventDefault();
});
window.addEventListener("blur", () => { // C or B let go in another window
  if (source === "camera") compare(false);
  if (bypassHeld) holdBypass(false);
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
events.addEventListener("download", (e) => drawDownload(JSON.parse(e.data)));
showOutline(outlineOn);
loadGallery();
loadModels();
previewLoop();

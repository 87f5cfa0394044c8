// The preview: Swap Cam's picture (or the camera's while compare is held), fetched one frame after another,
// and on request the face the tracker follows in that frame, drawn over it.
"use strict";

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
        if (outlineOn) await loadOutline(lastFrame);
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


// -- the face outline -------------------------------------------------------------------------------------

let outlineOn = localStorage.getItem("vcamswap.outline") === "1";
let outline = null; // the last api/face answer drawn

async function loadOutline(frame) {
  try {
    const r = await fetch(`api/face?frame=${frame}`);
    if (r.ok) outline = await r.json();
  } catch (err) {
    outline = null;
  }
  drawOutline();
}

function showOutline(on) {
  outlineOn = on;
  localStorage.setItem("vcamswap.outline", on ? "1" : "0");
  $("show-outline").checked = on;
  $("outline").hidden = !on;
  if (on && lastFrame) loadOutline(lastFrame);
  else drawOutline();
}

// The picture is drawn "contained" in its box (letterboxed): the outline goes through the same scale and offset.
function drawOutline() {
  const canvas = $("outline"), img = $("preview");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.clearRect(0, 0, canvas.width, canvas.height);
  canvas.dataset.faces = "0";
  if (!outlineOn || !outline || !outline.width) return;
  const iw = outline.width, ih = outline.height;
  const s = Math.min(w / iw, h / ih);
  const ox = (w - iw * s) / 2, oy = (h - ih * s) / 2;
  g.setTransform(ratio * s, 0, 0, ratio * s, ratio * ox, ratio * oy); // picture pixels to canvas pixels
  g.lineWidth = 2 / s;
  for (const f of outline.faces) {
    g.strokeStyle = f.detected ? "#4f8cff" : "#3fb970";
    g.setLineDash([6 / s, 4 / s]);
    g.strokeRect(f.box[0], f.box[1], f.box[2] - f.box[0], f.box[3] - f.box[1]);
    g.setLineDash([]);
    if (f.outline) {
      g.beginPath();
      f.outline.forEach(([x, y], i) => (i ? g.lineTo(x, y) : g.moveTo(x, y)));
      g.closePath();
      g.stroke();
    }
    g.fillStyle = "#e0a526";
    for (const [x, y] of f.kps) { g.beginPath(); g.arc(x, y, 2.5 / s, 0, 2 * Math.PI); g.fill(); }
  }
  canvas.dataset.faces = String(outline.faces.length);
  canvas.dataset.frame = String(outline.frame);
}

$("show-outline").addEventListener("change", (e) => showOutline(e.target.checked));
window.addEventListener("resize", drawOutline);

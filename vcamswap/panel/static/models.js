// Engine and models: audio sync, every model of the manifest with its licence, size and state, Verify for an
// installed one and Download for a missing one (one at a time, its progress on the event stream).
"use strict";

let download = null; // the daemon's download, as the event stream last told it

function drawAudio(a) {
  if (!a) return;
  const delay = a.delay_ms !== null && a.delay_ms !== undefined ? `, ${Math.round(a.delay_ms)} ms delay` : "";
  $("audio-sync").textContent = `${a.mode ?? "off"}${delay}${a.error ? ` (${a.error})` : ""}`;
}

function sayModel(text, ok) {
  const m = $("model-message");
  m.textContent = text || "";
  m.className = ok ? "message ok" : "message";
}

const mb = (bytes) => (bytes / 1e6).toFixed(1);

async function loadModels() {
  const r = await fetch("api/models");
  if (!r.ok) return;
  const reply = await r.json();
  download = reply.download;
  const body = $("models").tBodies[0];
  body.replaceChildren();
  for (const m of reply.models) body.append(modelRow(m));
  if (running(download)) drawDownload(download);
}

function modelRow(m) {
  const tr = document.createElement("tr");
  tr.dataset.model = m.name;
  tr.dataset.state = m.state;
  const name = document.createElement("td");
  name.append(Object.assign(document.createElement("span"), { className: "mname",
    textContent: m.role ? `${m.name} (${m.role})` : m.name }));
  name.append(Object.assign(document.createElement("span"), { className: "licence", textContent: m.licence }));
  name.title = m.description;
  const size = Object.assign(document.createElement("td"), { className: "size", textContent: `${m.size_mb} MB` });
  const state = Object.assign(document.createElement("td"), { className: "mstate", textContent: m.state_text });
  state.title = m.detail;
  if (!m.installed) state.classList.add("missing");
  if (m.state === "ok") state.classList.add("verified");
  const act = document.createElement("td");
  const button = document.createElement("button");
  button.type = "button";
  if (m.installed) {
    button.textContent = "Verify";
    button.title = `Check ${m.name}'s size and SHA-256 against the manifest`;
    button.addEventListener("click", () => verifyModel(m.name, button));
  } else {
    button.textContent = "Download";
    button.title = `Download ${m.name} (${m.size_mb} MB, ${m.licence})`;
    button.addEventListener("click", () => downloadModel(m.name));
  }
  act.append(button);
  tr.append(name, size, state, act);
  return tr;
}

async function verifyModel(name, button) {
  button.disabled = true;
  button.textContent = "checking…";
  const r = await fetch(`api/models/${encodeURIComponent(name)}/verify`, { method: "POST" });
  const reply = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  sayModel(r.ok ? `${name}: ${reply.state_text} (${reply.detail})` : reply.error || "refused", r.ok && reply.state === "ok");
  loadModels();
}

async function downloadModel(name) {
  download = { name, state: "downloading", done: 0, total: 0 }; // its end, however soon it comes, reloads the list
  sayModel(`downloading ${name}…`, true);
  const r = await fetch(`api/models/${encodeURIComponent(name)}/download`, { method: "POST" });
  const reply = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) {
    await loadModels();
    sayModel(reply.error || "refused");
  }
}

const running = (d) => !!d && ["downloading", "installing"].includes(d.state);

// The download's row shows a bar while it runs; its end reloads the list and says how it went in one line.
function drawDownload(d) {
  const ended = running(download) && !running(d);
  download = d;
  if (running(d)) {
    const row = $("models").querySelector(`tr[data-model="${CSS.escape(d.name)}"]`);
    if (!row) return;
    const cell = row.querySelector(".mstate");
    let bar = cell.querySelector("progress");
    if (!bar) {
      bar = document.createElement("progress");
      cell.replaceChildren(bar, Object.assign(document.createElement("span"), { className: "pct" }));
    }
    bar.max = d.total || 1;
    bar.value = d.done;
    cell.querySelector(".pct").textContent = d.state === "installing" ? "installing…" :
      d.total ? `${Math.floor((100 * d.done) / d.total)}% of ${mb(d.total)} MB` : `${mb(d.done)} MB`;
    for (const b of $("models").querySelectorAll("button")) if (b.textContent === "Download") b.disabled = true;
    sayModel(`downloading ${d.name}…`, true);
  } else if (ended && d) {
    sayModel(d.state === "done" ? d.text : `${d.name}: ${d.text}`, d.state === "done");
    loadModels();
  }
}

// The face gallery: choose, try on, rename, remove, and add photos by the form or by dropping them on it.
"use strict";

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

// One photo a request, through the same route and checks whether picked in the form or dropped.
async function addPhoto(form) {
  const r = await fetch("api/faces", { method: "POST", body: form });
  const reply = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  return r.ok ? { name: reply.name } : { error: reply.error || "refused" };
}

$("upload").addEventListener("submit", async (e) => {
  e.preventDefault();
  say("adding…", true);
  const done = await addPhoto(new FormData($("upload")));
  if (done.error) { say(done.error); return; }
  say(`added ${done.name}`, true);
  $("upload").reset();
  loadGallery();
});

async function dropPhotos(files) {
  const added = [], refused = [];
  for (const file of files) {
    say(`adding ${file.name}…`, true);
    const form = new FormData();
    form.append("photo", file, file.name);
    const done = await addPhoto(form);
    if (done.error) refused.push(done.error); else added.push(done.name);
  }
  const parts = [added.length ? `added ${added.join(", ")}` : "", ...refused];
  say(parts.filter(Boolean).join("; "), !refused.length);
  if (added.length) loadGallery();
}

const drop = document.querySelector("section.faces");
const carriesFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
for (const ev of ["dragenter", "dragover"]) {
  drop.addEventListener(ev, (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    drop.classList.add("dropping");
  });
}
drop.addEventListener("dragleave", (e) => { if (!drop.contains(e.relatedTarget)) drop.classList.remove("dropping"); });
drop.addEventListener("drop", (e) => {
  drop.classList.remove("dropping");
  if (!carriesFiles(e)) return;
  e.preventDefault();
  dropPhotos([...e.dataTransfer.files]);
});
// A photo dropped beside the gallery must not make the browser leave the panel to show it.
window.addEventListener("dragover", (e) => { if (carriesFiles(e)) e.preventDefault(); });
window.addEventListener("drop", (e) => { if (carriesFiles(e)) e.preventDefault(); });


// The maskface page: plain JavaScript over the app's JSON API (no libraries, nothing remote).
"use strict";

const $ = (id) => document.getElementById(id);
let OPTIONS = null;

// ---- talking to the server ---------------------------------------------------------------

// POST a form with upload progress; resolves to {ok, status, json, blob, headers}.
function post(url, form, onUpload, expectBlob) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.responseType = "blob";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onUpload) onUpload(e.loaded / e.total); };
    xhr.onload = async () => {
      const blob = xhr.response;
      const type = xhr.getResponseHeader("Content-Type") || "";
      const out = { ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, blob: null,
                    json: null, header: (h) => xhr.getResponseHeader(h) };
      if (type.includes("application/json")) {
        try { out.json = JSON.parse(await blob.text()); } catch (err) { out.json = null; }
      } else if (expectBlob) {
        out.blob = blob;
      }
      resolve(out);
    };
    xhr.onerror = () => resolve({ ok: false, status: 0, json: null, blob: null,
                                  header: () => null });
    xhr.send(form);
  });
}

function errorText(res) {
  if (res.status === 0) return "The maskface server did not answer: is it still running?";
  if (res.json && res.json.error) return res.json.error;
  if (res.status === 413) return "The photo is too large.";
  return `The server refused the request (HTTP ${res.status}).`;
}

function setStatus(id, text, kind) {
  const el = $(id);
  el.textContent = text;
  el.className = "status" + (kind ? " " + kind : "");
}

function setProgress(id, fraction) {
  const bar = $(id);
  if (fraction === null) { bar.hidden = true; return; }
  bar.hidden = false;
  if (fraction === undefined) bar.removeAttribute("value");  // indeterminate: working
  else bar.value = fraction;
}

function checkFile(file) {
  if (!file) return "Choose a photo first.";
  if (file.size === 0) return `${file.name} is empty (0 bytes).`;
  const limit = OPTIONS ? OPTIONS.max_upload_mb : 15;
  if (file.size > limit * 1e6) return `${file.name} is too large: the limit is ${limit} MB per photo.`;
  if (file.type && !file.type.startsWith("image/"))
    return `${file.name} is not an image: use a JPEG, PNG, BMP, WebP or TIFF photo.`;
  return null;
}

// ---- drop zones ---------------------------------------------------------------------------

function dropZone(zoneId, inputId, nameId, onChange) {
  const zone = $(zoneId), input = $(inputId);
  const show = () => {
    const names = Array.from(input.files).map((f) => f.name);
    $(nameId).textContent = names.length > 3 ? `${names.length} photos` : names.join(", ");
    onChange();
  };
  input.addEventListener("change", show);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (!e.dataTransfer.files.length) return;
    const dt = new DataTransfer();
    const files = input.multiple ? Array.from(e.dataTransfer.files) : [e.dataTransfer.files[0]];
    files.forEach((f) => dt.items.add(f));
    input.files = dt.files;
    show();
  });
}

// ---- 1. masking ------------------------------------------------------------------------------

function chosenStyles() {
  return Array.from(document.querySelectorAll("#styles input:checked")).map((i) => i.value);
}

function styleInfo(name) { return OPTIONS.styles.find((s) => s.name === name); }

function refreshPatterns() {
  const styles = chosenStyles();
  const select = $("pattern");
  const keep = select.value;
  const all = new Set();
  styles.forEach((s) => styleInfo(s).patterns.forEach((p) => all.add(p)));
  select.innerHTML = "";
  const none = new Option("style's own (solid)", "");
  select.add(none);
  Array.from(all).forEach((p) => select.add(new Option(p, p)));
  select.value = all.has(keep) ? keep : "";
  select.disabled = all.size === 0;
  const without = styles.filter((s) => styleInfo(s).patterns.length === 0);
  $("pattern-hint").textContent = without.length && all.size
    ? `no patterns on ${without.join(", ")}` : "";
}

function refreshMaskButton() {
  $("mask-run").disabled = !$("mask-file").files.length || !chosenStyles().length;
}

function buildMaskOptions() {
  const styles = $("styles");
  const first = OPTIONS.styles.some((s) => s.name === "surgical") ? "surgical"
    : OPTIONS.styles[0].name;
  OPTIONS.styles.forEach((s) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.value = s.name; box.name = "style"; box.checked = s.name === first;
    box.addEventListener("change", () => { refreshPatterns(); refreshMaskButton(); });
    label.append(box, " " + s.name);
    styles.append(label);
  });
  const color = $("color");
  color.add(new Option("style's own", ""));
  Object.entries(OPTIONS.colors).forEach(([name, hex]) => {
    const opt = new Option(name, name);
    opt.style.background = hex;
    color.add(opt);
  });
  color.add(new Option("custom…", "custom"));
  color.addEventListener("change", () => { $("color-custom").hidden = color.value !== "custom"; });
  OPTIONS.wear.forEach((w, i) => {
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio"; radio.name = "wear"; radio.value = w; radio.checked = i === 0;
    label.append(radio, " " + w.replace("_", " "));
    $("wear").append(label);
  });
  OPTIONS.renderers.forEach((r) => $("renderer").add(new Option(r, r)));
  refreshPatterns();
}

async function runMask() {
  const file = $("mask-file").files[0];
  const problem = checkFile(file);
  if (problem) { setStatus("mask-status", problem, "error"); return; }
  const styles = chosenStyles();
  const wear = document.querySelector("#wear input:checked").value;
  let color = $("color").value;
  if (color === "custom") color = $("color-custom").value;
  const pattern = $("pattern").value;
  $("mask-run").disabled = true;
  $("mask-results").innerHTML = "";
  let done = 0, failed = 0;
  for (const style of styles) {
    const form = new FormData();
    form.append("file", file);
    form.append("style", style);
    form.append("wear", wear);
    form.append("renderer", $("renderer").value);
    form.append("faces", $("all-faces").checked ? "all" : "largest");
    form.append("seed", String(parseInt($("seed").value || "0", 10) || 0));
    const info = styleInfo(style);
    if (color && info.colors) form.append("color", color);
    if (pattern && info.patterns.includes(pattern)) form.append("pattern", pattern);
    const step = `Masking ${done + failed + 1} of ${styles.length} (${style})`;
    setStatus("mask-status", step + ": uploading…", "busy");
    setProgress("mask-progress", (done + failed) / styles.length);
    const res = await post("/api/mask", form, (f) => {
      if (f >= 1) { setStatus("mask-status", step + ": drawing the mask…", "busy");
                    setProgress("mask-progress", undefined); }
    }, true);
    if (!res.ok) {
      failed += 1;
      setStatus("mask-status", errorText(res), "error");
      if (res.status !== 400) break;  // the photo itself is the problem: same for every style
      continue;
    }
    done += 1;
    addMaskResult(res, style, wear, color, pattern);
  }
  setProgress("mask-progress", null);
  if (done) {
    const faces = done === 1 ? "" : "s";
    setStatus("mask-status", `Done: ${done} masked image${faces}` +
      (failed ? `, ${failed} failed (see above)` : "") + ".", failed ? "error" : "ok");
  }
  refreshMaskButton();
}

function addMaskResult(res, style, wear, color, pattern) {
  const url = URL.createObjectURL(res.blob);
  const disposition = res.header("Content-Disposition") || "";
  const match = disposition.match(/filename="([^"]+)"/);
  const filename = match ? match[1] : `masked_${style}.png`;
  const fig = document.createElement("figure");
  fig.className = "mask-result";
  const img = document.createElement("img");
  img.src = url; img.alt = `masked with ${style}`;
  const cap = document.createElement("figcaption");
  const link = document.createElement("a");
  link.href = url; link.download = filename; link.textContent = "Download";
  link.className = "download";
  const faces = res.header("X-Faces-Masked") || "1";
  const look = [style, wear.replace("_", " "), color, pattern].filter(Boolean).join(", ");
  cap.append(`${look} — ${faces} face${faces === "1" ? "" : "s"} `, link);
  fig.append(img, cap);
  $("mask-results").append(fig);
}

// ---- 2. enrolment ----------------------------------------------------------------------------

function showGallery(info) {
  const list = $("people");
  list.innerHTML = "";
  if (!info) return;
  $("gallery-summary").textContent =
    `(${info.people} ${info.people === 1 ? "person" : "people"}, ${info.templates} templates)`;
  Object.entries(info.identities).forEach(([name, count]) => {
    const li = document.createElement("li");
    li.textContent = `${name} — ${count} template${count === 1 ? "" : "s"}`;
    li.dataset.identity = name;
    const remove = document.createElement("button");
    remove.type = "button"; remove.className = "small"; remove.textContent = "remove";
    remove.addEventListener("click", () => removePerson(name));
    li.append(remove);
    list.append(li);
  });
  if (!Object.keys(info.identities).length) {
    const li = document.createElement("li");
    li.textContent = "nobody yet";
    list.append(li);
  }
}

function refreshEnrolButton() {
  $("enrol-run").disabled = !$("enrol-files").files.length || !$("enrol-name").value.trim();
}

async function runEnrol() {
  const name = $("enrol-name").value.trim();
  const files = Array.from($("enrol-files").files);
  if (!name) { setStatus("enrol-status", "Give the person a name first.", "error"); return; }
  $("enrol-run").disabled = true;
  const used = [], skipped = [];
  for (const [i, file] of files.entries()) {
    const problem = checkFile(file);
    if (problem) { skipped.push(problem); continue; }
    const step = `Enrolling ${name}: photo ${i + 1} of ${files.length}`;
    setStatus("enrol-status", step + "…", "busy");
    setProgress("enrol-progress", i / files.length);
    const form = new FormData();
    form.append("name", name);
    form.append("files", file);
    form.append("mask_aware", $("mask-aware").checked ? "true" : "false");
    const res = await post("/api/enrol", form, (f) => {
      if (f >= 1) setProgress("enrol-progress", undefined);
    }, false);
    if (res.ok) {
      used.push(...res.json.used);
      res.json.skipped.forEach((s) => skipped.push(`${s.photo}: ${s.reason}`));
      showGallery(res.json.gallery);
    } else {
      skipped.push(errorText(res));
      if (res.status === 0 || res.status === 503) break;
    }
  }
  setProgress("enrol-progress", null);
  let text = used.length ? `Enrolled ${name} from ${used.length} photo${used.length === 1 ? "" : "s"}.`
                         : `${name} was not enrolled.`;
  if (skipped.length) text += "\nSkipped:\n" + skipped.join("\n");
  setStatus("enrol-status", text, used.length && !skipped.length ? "ok" : "error");
  refreshEnrolButton();
}

async function removePerson(name) {
  if (!window.confirm(`Remove ${name} from the gallery?`)) return;
  const res = await fetch(`/api/identities/${encodeURIComponent(name)}`, { method: "DELETE" });
  const json = await res.json().catch(() => null);
  if (!res.ok) { setStatus("enrol-status", (json && json.error) || "Could not remove.", "error"); return; }
  setStatus("enrol-status", `Removed ${name} (${json.removed} templates).`, "ok");
  showGallery(json.gallery);
}

// ---- 3. identification -----------------------------------------------------------------------

async function runIdentify() {
  const file = $("identify-file").files[0];
  const problem = checkFile(file);
  const table = $("identify-table");
  if (problem) { setStatus("identify-status", problem, "error"); return; }
  setStatus("identify-status", "Uploading…", "busy");
  setProgress("identify-progress", 0);
  const form = new FormData();
  form.append("file", file);
  const res = await post("/api/identify", form, (f) => {
    setProgress("identify-progress", f < 1 ? f : undefined);
    if (f >= 1) setStatus("identify-status", "Looking for faces and searching the gallery…", "busy");
  }, false);
  setProgress("identify-progress", null);
  if (!res.ok) {
    setStatus("identify-status", errorText(res), "error");
    table.hidden = true;
    const canvas = $("identify-canvas");
    canvas.width = 0; canvas.height = 0;
    return;
  }
  await drawFaces(file, res.json);
  const known = res.json.faces.filter((f) => f.identity !== "unknown").length;
  setStatus("identify-status", `${res.json.faces.length} face${res.json.faces.length === 1 ? "" : "s"}` +
    ` found, ${known} recognised (threshold ${res.json.threshold}).`, "ok");
}

function drawFaces(file, result) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => {
      const canvas = $("identify-canvas");
      // The server reads EXIF rotation; so does the browser for <img>: sizes then agree.
      // Big photos shrink to fit; small ones (e.g. 250-pixel crops) grow to be readable.
      const scale = Math.min(640 / result.width, 480 / result.height,
                             Math.max(1, 360 / Math.max(result.width, result.height)));
      canvas.width = Math.round(result.width * scale);
      canvas.height = Math.round(result.height * scale);
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      const tbody = $("identify-table").querySelector("tbody");
      tbody.innerHTML = "";
      result.faces.forEach((face, i) => {
        const [x0, y0, x1, y1] = face.box.map((v) => v * scale);
        const known = face.identity !== "unknown";
        const colour = known ? "#1f8a4c" : "#c0302e";
        ctx.lineWidth = Math.max(2, canvas.width / 250);
        ctx.strokeStyle = colour;
        ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
        const label = `${i + 1} ${face.identity} ${face.score.toFixed(2)}${face.masked ? " (mask)" : ""}`;
        ctx.font = "bold 14px system-ui, sans-serif";
        const w = ctx.measureText(label).width + 8;
        const tx = Math.max(0, Math.min(x0, canvas.width - w));  // keep the label on the canvas
        const ty = y0 >= 20 ? y0 - 20 : Math.min(y1, canvas.height - 20);
        ctx.fillStyle = colour;
        ctx.fillRect(tx, ty, w, 20);
        ctx.fillStyle = "#fff";
        ctx.fillText(label, tx + 4, ty + 15);
        const row = document.createElement("tr");
        const cells = [String(i + 1), face.identity, face.score.toFixed(3),
                       face.masked ? "on" : "off",
                       face.matches.map((m) => `${m.identity} ${m.score.toFixed(2)}`).join(", ")];
        cells.forEach((text, c) => {
          const td = document.createElement("td");
          td.textContent = text;
          if (c === 1) td.className = known ? "known" : "unknown";
          row.append(td);
        });
        tbody.append(row);
      });
      $("identify-table").hidden = false;
      URL.revokeObjectURL(img.src);
      resolve();
    };
    img.onerror = () => { resolve(); };
    img.src = URL.createObjectURL(file);
  });
}

// ---- start -------------------------------------------------------------------------------------

async function start() {
  try {
    const res = await fetch("/api/options");
    OPTIONS = await res.json();
  } catch (err) {
    setStatus("mask-status", "Could not load the options from the server.", "error");
    return;
  }
  buildMaskOptions();
  dropZone("mask-drop", "mask-file", "mask-file-name", () => {
    refreshMaskButton();
    const problem = checkFile($("mask-file").files[0]);
    setStatus("mask-status", problem || "", problem ? "error" : "");
  });
  $("mask-run").addEventListener("click", runMask);
  if (!OPTIONS.gallery) {
    for (const id of ["enrol", "identify"]) {
      $(id).classList.add("disabled");
      const note = $(`${id}-nogallery`);
      note.hidden = false;
      note.textContent = "No gallery is open. Start the app with " +
        "'maskface serve --gallery FOLDER' to enrol and identify people.";
    }
  } else {
    showGallery(OPTIONS.gallery);
    dropZone("enrol-drop", "enrol-files", "enrol-file-names", refreshEnrolButton);
    $("enrol-name").addEventListener("input", refreshEnrolButton);
    $("enrol-run").addEventListener("click", runEnrol);
    dropZone("identify-drop", "identify-file", "identify-file-name", runIdentify);
  }
  document.body.dataset.ready = "1";
}

start();

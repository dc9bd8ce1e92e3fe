// The page's one job: send a picture and a text to /v1/predict and draw the answer.
// Everything is built with textContent, never innerHTML: labels and errors come from the server.
"use strict";

const LABELS = ["positive", "neutral", "negative"];
const MAX_BYTES = 10 * 1024 * 1024;
const MAX_CHARS = 5000;

const $ = (id) => document.getElementById(id);
const form = $("classify-form");
const imageInput = $("image-input");
const dropZone = $("drop-zone");
const preview = $("preview");
const textInput = $("text-input");
const button = $("classify");
const errorBox = $("error");
let chosenFile = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const percent = (p) => `${(100 * p).toFixed(1)}%`;
const headName = (head) => head.replace(/_/g, " ");
const fileSize = (bytes) =>
  bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(0)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
// "hf-resnet:/a/long/path/tiny-resnet" reads better as "hf-resnet:tiny-resnet".
const shortName = (name) => name.replace(/:.*\/([^/]+)\/?$/, ":$1");
// A share too thin to hold its label keeps the label for screen readers only.
const MIN_LABELLED_SHARE = 0.15;

// An error replaces the last answer: leaving it up would suggest it belongs to the new input.
function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
  $("result").hidden = true;
}

function clearError() {
  errorBox.hidden = true;
  errorBox.textContent = "";
}

function choose(file) {
  clearError();
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showError(`"${file.name}" is not an image (${file.type}).`);
    return;
  }
  if (file.size > MAX_BYTES) {
    showError(`"${file.name}" is ${(file.size / 1048576).toFixed(1)} MB; the limit is 10 MB.`);
    return;
  }
  chosenFile = file;
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  dropZone.classList.add("has-image");
  $("image-hint").firstChild.textContent = "Drop another image here, or ";
  $("file-name").textContent = `${file.name} · ${fileSize(file.size)}`;
}

// A file the browser cannot draw may still be one the server reads (or it says why not).
preview.addEventListener("error", () => {
  preview.hidden = true;
  $("file-name").textContent += " · no preview";
});

imageInput.addEventListener("change", () => choose(imageInput.files[0]));

for (const type of ["dragenter", "dragover"]) {
  dropZone.addEventListener(type, (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
}
for (const type of ["dragleave", "drop"]) {
  dropZone.addEventListener(type, () => dropZone.classList.remove("dragging"));
}
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  choose(event.dataTransfer.files[0]);
});

textInput.addEventListener("input", () => {
  $("text-count").textContent = `${textInput.value.length} / ${MAX_CHARS}`;
});

// Three rows: class name, a filled track, the percentage. role=meter tells screen readers the value.
function bars(probabilities) {
  const box = el("div", "bars");
  for (const label of LABELS) {
    const p = probabilities[label] ?? 0;
    const row = el("div", "bar-row");
    row.dataset.label = label;
    row.dataset.value = String(p);
    const track = el("div", "bar-track");
    track.setAttribute("role", "meter");
    track.setAttribute("aria-label", label);
    track.setAttribute("aria-valuemin", "0");
    track.setAttribute("aria-valuemax", "100");
    track.setAttribute("aria-valuenow", (100 * p).toFixed(1));
    const fill = el("div", `bar-fill ${label}`);
    fill.style.width = percent(p);
    track.append(fill);
    row.append(el("span", "bar-name", label), track, el("span", "bar-value", percent(p)));
    box.append(row);
  }
  return box;
}

function badge(label, small) {
  const node = el("span", small ? "badge small" : "badge", label);
  node.dataset.label = label;
  return node;
}

function showResult(result) {
  const label = $("result-label");
  label.textContent = result.label;
  label.dataset.label = result.label;
  $("result-head").textContent = `by the ${headName(result.head)} head, ${percent(result.probabilities[result.label])} sure`;
  $("result-bars").replaceChildren(...bars(result.probabilities).children);

  const cards = [];
  for (const [modality, answer] of Object.entries(result.modalities || {})) {
    const card = el("div", "modality");
    card.dataset.modality = modality;
    const title = el("h4", null, `${modality[0].toUpperCase()}${modality.slice(1)} only`);
    title.append(badge(answer.label, true));
    card.append(title, bars(answer.probabilities));
    cards.push(card);
  }
  if (!cards.length) cards.push(el("p", "note", "This run has no single-modality heads."));
  $("modalities").replaceChildren(...cards);

  const fusion = result.fusion;
  const split = $("fusion-split");
  const single = result.head.match(/^(text|image)_only$/);
  if (single) {
    split.replaceChildren();
    split.hidden = true;
    $("fusion-note").textContent = `The answering head is ${headName(result.head)}: it reads the ${single[1]} alone.`;
    $("fusion").hidden = false;
  } else if (fusion && fusion.image_share !== undefined) {
    const part = (className, name, share) => {
      const labelled = share >= MIN_LABELLED_SHARE;
      const node = el("span", className, labelled ? `${name} ${percent(share)}` : "");
      node.style.width = percent(share);
      if (!labelled) node.style.padding = "0"; // padding alone would draw a sliver wider than the share
      return node;
    };
    split.replaceChildren(part("text-part", "text", fusion.text_share), part("image-part", "image", fusion.image_share));
    split.hidden = false;
    split.setAttribute("aria-label", `text ${percent(fusion.text_share)}, image ${percent(fusion.image_share)}`);
    $("fusion-note").textContent = `The ${headName(result.head)} head leaned on the ${fusion.leaned_on}.`;
    $("fusion").hidden = false;
  } else if (fusion && fusion.mean_gate !== undefined) {
    split.replaceChildren();
    split.hidden = true;
    $("fusion-note").textContent =
      `The gated head's ${fusion.gate} gate was ${percent(fusion.mean_gate)} open on average.`;
    $("fusion").hidden = false;
  } else {
    $("fusion").hidden = true;
  }
  $("result").hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError();
  const text = textInput.value;
  if (!chosenFile) return showError("Choose a picture first.");
  if (!text.trim()) return showError("Type the tweet's text first.");

  const body = new FormData();
  body.append("image", chosenFile, chosenFile.name);
  body.append("text", text);
  button.disabled = true;
  button.textContent = "Classifying…";
  try {
    const response = await fetch("/v1/predict", { method: "POST", body });
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    if (!response.ok) {
      showError((payload && payload.error) || `The server answered ${response.status}.`);
      return;
    }
    showResult(payload);
  } catch (error) {
    showError(`Could not reach the server (${error.message}).`);
  } finally {
    button.disabled = false;
    button.textContent = "Classify";
  }
});

fetch("/health")
  .then((response) => response.json())
  .then((health) => {
    $("model-info").textContent =
      `Run “${health.run}” · ${shortName(health.encoders.image)} + ${shortName(health.encoders.text)}` +
      ` · heads: ${health.heads.join(", ")}`;
  })
  .catch(() => {
    $("model-info").textContent = "Model info unavailable.";
  });

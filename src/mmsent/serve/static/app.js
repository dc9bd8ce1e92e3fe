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

// "mean of fusion models (linear probe + concat)": a combined model names its members.
function modelName(result) {
  const members = result.members || [];
  const name = headName(result.head);
  return members.length > 1 || (members.length === 1 && members[0] !== result.head)
    ? `${name} (${members.map(headName).join(" + ")})`
    : name;
}

// Percentage points, signed: "+31", "−4" (a true minus sign), "0".
function signedPoints(effect) {
  const points = Math.round(100 * effect);
  return points > 0 ? `+${points}` : points < 0 ? `\u2212${-points}` : "0";
}

// One plain sentence from the two ablation effects, the larger first:
// 'The text moved "positive" by +31 points; the image by +4.'
function effectSentence(label, fusion) {
  const sides = [
    ["text", fusion.text_effect],
    ["image", fusion.image_effect],
  ].sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  const [[first, firstEffect], [second, secondEffect]] = sides;
  const quoted = `\u201c${label}\u201d`;
  if (Math.round(100 * firstEffect) === 0) return `Neither the text nor the image moved ${quoted} by a whole point.`;
  const one = Math.abs(Math.round(100 * firstEffect)) === 1 ? "point" : "points";
  const head = `The ${first} moved ${quoted} by ${signedPoints(firstEffect)} ${one}`;
  const tail =
    Math.round(100 * secondEffect) === 0 ? `the ${second} did not move it` : `the ${second} by ${signedPoints(secondEffect)}`;
  return `${head}; ${tail}.`;
}

// A bar per side from a centre line: right for support of the answer, left for against.
function effectRows(fusion) {
  return ["text", "image"].map((side) => {
    const effect = fusion[`${side}_effect`];
    const row = el("div", "effect-row");
    row.dataset.side = side;
    row.dataset.value = String(effect);
    const track = el("div", "effect-track");
    track.setAttribute("role", "img");
    track.setAttribute("aria-label", `${side}: ${signedPoints(effect)} points`);
    const fill = el("div", `effect-fill ${effect >= 0 ? "for" : "against"}`);
    fill.style.width = `${Math.min(50, 50 * Math.abs(effect))}%`;
    track.append(fill);
    row.append(el("span", "effect-name", side), track, el("span", "effect-value", `${signedPoints(effect)} pts`));
    return row;
  });
}

// A head's own figures, named as what they are (the API says which kind and what it measures).
function readoutText(readout) {
  const figure =
    readout.kind === "gate" && readout.mean_gate != null
      ? ` ${percent(readout.mean_gate)}`
      : readout.image_share != null && readout.kind !== "single modality"
        ? ` ${percent(readout.image_share)}`
        : "";
  return `The ${headName(readout.model)} model's own readout (${readout.kind}${figure}), not an explanation: ${readout.what}.`;
}

function showConfidence(result) {
  const flag = $("low-confidence");
  const confidence = result.confidence;
  if (!confidence || !confidence.low) {
    flag.hidden = true;
    return;
  }
  const runnerUp = confidence.runner_up;
  $("low-confidence-why").textContent =
    `${percent(confidence.probability)} is under ${Math.round(100 * confidence.threshold)}%: by the model's ` +
    `own account this answer is more likely wrong than right. ` +
    `Runner-up: ${runnerUp} (${percent(result.probabilities[runnerUp])}).`;
  const hardest = confidence.hardest_class;
  $("hardest-class").textContent = hardest
    ? `The class this model finds hardest is ${hardest.label}: it recognised ${percent(hardest.recall)} of ` +
      `${hardest.label} tweets in the run's ${hardest.measured_on}.`
    : "";
  $("hardest-class").hidden = !hardest;
  flag.hidden = false;
}

function showExplanation(result) {
  const fusion = result.fusion;
  if (fusion) {
    $("explain-sentence").textContent = effectSentence(result.label, fusion);
    $("effects").replaceChildren(...effectRows(fusion));
  } else {
    $("explain-sentence").textContent =
      "This run's model was saved without its training averages, so how much each side moved the answer cannot be measured.";
    $("effects").replaceChildren();
  }
  $("effects").hidden = $("explain-how").hidden = !fusion;
  const readout = result.explanation && result.explanation.readout;
  $("readout").textContent = readout ? readoutText(readout) : "";
  $("readout").hidden = !readout;
}

// Every model the run holds: the answer's members first, then the candidates trained beside it.
function showModels(result) {
  const members = new Set(result.members || [result.head]);
  const names = Object.keys(result.per_head || {}).sort((a, b) => members.has(b) - members.has(a));
  const cards = names.map((name) => {
    const answer = result.per_head[name];
    const card = el("div", "model-card");
    card.dataset.model = name;
    const title = el("h4", null, headName(name));
    title.append(badge(answer.label, true));
    const alone = name.match(/^(text|image)_only$/);
    const role = members.has(name) ? "part of the answer" : "trained beside it, not part of the answer";
    card.append(title, el("p", "role", alone ? `${role} · reads the ${alone[1]} alone` : role), bars(answer.probabilities));
    return card;
  });
  $("models").replaceChildren(...cards);
}

function showResult(result) {
  const label = $("result-label");
  label.textContent = result.label;
  label.dataset.label = result.label;
  $("result-head").textContent = `by ${modelName(result)}, ${percent(result.probabilities[result.label])} sure`;
  $("result-bars").replaceChildren(...bars(result.probabilities).children);
  showConfidence(result);
  showExplanation(result);
  showModels(result);

  const section = $("result");
  section.hidden = false;
  // Bring the answer to the reader: keyboard focus on its heading, and scrolled to unless its top is
  // already in the upper half of the window (the wide two-column layout shows it beside the form).
  $("result-title").focus({ preventScroll: true });
  const top = section.getBoundingClientRect().top;
  if (top < 0 || top > window.innerHeight / 2) {
    const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    section.scrollIntoView({ block: "start", behavior: smooth ? "smooth" : "auto" });
  }
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
    const others = health.heads.filter((name) => !health.members.includes(name));
    $("model-info").textContent =
      `Run “${health.run}” · answers with ${modelName({ head: health.model, members: health.members })}` +
      ` · ${shortName(health.encoders.image)} + ${shortName(health.encoders.text)}` +
      (others.length ? ` · also shown: ${others.map(headName).join(", ")}` : "");
  })
  .catch(() => {
    $("model-info").textContent = "Model info unavailable.";
  });

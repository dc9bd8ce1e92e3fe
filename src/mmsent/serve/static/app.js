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
  const name = headName(result.model);
  return members.length > 1 || (members.length === 1 && members[0] !== result.model)
    ? `${name} (${members.map(headName).join(" + ")})`
    : name;
}

const accuracyNote = (accuracy) => (accuracy == null ? "" : `cross-validated accuracy ${percent(accuracy)}`);

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
  if (!result.low_confidence) {
    flag.hidden = true;
  } else {
    const runnerUp = result.runner_up;
    $("low-confidence-why").textContent =
      `${percent(result.confidence)} is under 50%: by the model's own account this answer is more ` +
      `likely wrong than right. Runner-up: ${runnerUp} (${percent(result.probabilities[runnerUp])}).`;
    const hardest = result.hardest_class;
    $("hardest-class").textContent = hardest
      ? `The class this model finds hardest is ${hardest.label}: it recognised ${percent(hardest.recall)} of ` +
        `${hardest.label} tweets in the run's ${hardest.measured_on}.`
      : "";
    $("hardest-class").hidden = !hardest;
    flag.hidden = false;
  }
  // The API's own sentence (the last of the explanation's when the runner-up is within 10 points).
  const sentences = (result.explanation && result.explanation.sentences) || [];
  $("close-call-why").textContent = result.close_call ? sentences[sentences.length - 1] : "";
  $("close-call").hidden = !result.close_call;
}

// The API's sentences, as written: what the run answers without each side (the single-modality
// models, whose cards below show the same figures), how the sides combine, and a close call.
function showExplanation(result) {
  const explanation = result.explanation || {};
  const said = explanation.sentences || [];
  // A close call's sentence (always the last) stands in its own flag above.
  const sentences = (result.close_call ? said.slice(0, -1) : said).map((sentence) => el("li", null, sentence));
  $("explain-sentences").replaceChildren(...sentences);
  const readout = explanation.readout;
  $("readout").textContent = readout ? readoutText(readout) : "";
  $("readout").hidden = !readout;
}

// Every model that answered: the answer's members first, then the candidates trained beside it.
function showModels(result) {
  const members = new Set(result.members || [result.model]);
  const names = Object.keys(result.per_model || {}).sort((a, b) => members.has(b) - members.has(a));
  const cards = names.map((name) => {
    const answer = result.per_model[name];
    const card = el("div", "model-card");
    card.dataset.model = name;
    const title = el("h4", null, headName(name));
    title.append(badge(answer.label, true));
    const alone = name.match(/^(text|image)_only$/);
    const role = members.has(name) ? "part of the answer" : "trained beside it, not part of the answer";
    const notes = [role, alone ? `reads the ${alone[1]} alone` : "", accuracyNote(answer.cv_accuracy)];
    card.append(title, el("p", "role", notes.filter(Boolean).join(" · ")), bars(answer.probabilities));
    return card;
  });
  $("models").replaceChildren(...cards);
  $("models-title").textContent = result.inputs.length === 1 ? "The model that answered" : "Every model in this run";
}

function showResult(result) {
  const label = $("result-label");
  label.textContent = result.label;
  label.dataset.label = result.label;
  const alone = result.inputs.length === 1 ? `, from the ${result.inputs[0]} alone` : "";
  const accuracy = result.cv_accuracy == null ? "" : ` · ${accuracyNote(result.cv_accuracy)}`;
  $("result-head").textContent = `by ${modelName(result)}${alone}, ${percent(result.confidence)} sure${accuracy}`;
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
  // Either side alone is answered by the run's model for that side; a blank text counts as none.
  if (!chosenFile && !text.trim()) return showError("Choose a picture, type the tweet's text, or both.");

  const body = new FormData();
  if (chosenFile) body.append("image", chosenFile, chosenFile.name);
  if (text.trim()) body.append("text", text);
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
    const others = health.models.filter((name) => !health.members.includes(name));
    $("model-info").textContent =
      `Run “${health.run}” · answers with ${modelName({ model: health.model, members: health.members })}` +
      ` · ${shortName(health.encoders.image)} + ${shortName(health.encoders.text)}` +
      (others.length ? ` · also shown: ${others.map(headName).join(", ")}` : "");
  })
  .catch(() => {
    $("model-info").textContent = "Model info unavailable.";
  });

// The draw-a-digit page: strokes on a canvas, sent as a PNG to /predict?features=1 a moment
// after the pen stops (debounced), and the answer drawn: label, ten bars, the 28×28 input the
// network saw, the C1 and C3 feature maps. Plain JavaScript, no library, nothing fetched from
// elsewhere. #result's data-state is "empty", "pending" (a request is due or in flight) or
// "ready" (the answer to the latest drawing is shown), which the browser test waits on.
"use strict";

const DEBOUNCE_MS = 150;
const PEN_WIDTH = 18;

const pad = document.getElementById("pad");
const pen = pad.getContext("2d");
const result = document.getElementById("result");
const labelView = document.getElementById("prediction-label");
const confidenceView = document.getElementById("prediction-confidence");
const statusView = document.getElementById("status");
const bars = document.getElementById("bars");
const seen = document.getElementById("seen");

let drawing = false;
let inked = false;
let last = null;
let timer = null;
let latest = 0; // number of the latest request: older answers arriving late are dropped

function blankPad() {
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, pad.width, pad.height);
  inked = false;
}

function buildBars() {
  for (let digit = 0; digit < 10; digit++) {
    const row = document.createElement("li");
    row.innerHTML = `<span class="digit">${digit}</span><span class="track"><span class="fill"></span></span><span class="value">–</span>`;
    bars.appendChild(row);
  }
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return { x: (event.clientX - box.left) * (pad.width / box.width), y: (event.clientY - box.top) * (pad.height / box.height) };
}

function stroke(from, to) {
  pen.strokeStyle = "#000";
  pen.lineWidth = PEN_WIDTH;
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.beginPath();
  pen.moveTo(from.x, from.y);
  pen.lineTo(to.x, to.y);
  pen.stroke();
  inked = true;
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  last = point(event);
  stroke(last, last); // a dot
  schedule();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const here = point(event);
  stroke(last, here);
  last = here;
  schedule();
});
for (const name of ["pointerup", "pointercancel", "pointerleave"]) {
  pad.addEventListener(name, () => {
    if (drawing) schedule();
    drawing = false;
  });
}

function schedule() {
  result.dataset.state = "pending";
  clearTimeout(timer);
  timer = setTimeout(() => { timer = null; predictDrawing(); }, DEBOUNCE_MS);
}

function predictDrawing() {
  if (!inked) return;
  pad.toBlob((blob) => send(blob, "image/png"), "image/png");
}

async function send(body, type) {
  const number = ++latest;
  result.dataset.state = "pending";
  try {
    const response = await fetch("/predict?features=1", { method: "POST", headers: { "Content-Type": type }, body });
    const answer = await response.json();
    if (number !== latest) return;
    if (!response.ok) throw new Error(answer.error ? answer.error.message : `HTTP ${response.status}`);
    show(answer);
    statusView.className = "";
  } catch (error) {
    if (number !== latest) return;
    statusView.textContent = `Error: ${error.message}`;
    statusView.className = "error";
  }
  if (number === latest && timer === null) result.dataset.state = "ready";
}

function show(answer) {
  labelView.textContent = answer.label;
  const best = answer.probabilities[answer.label];
  confidenceView.textContent = `${(best * 100).toFixed(1)}% sure`;
  const verdicts = {
    "one digit": "One digit found.",
    "empty": "The image looks empty: draw larger or darker.",
    "several blobs": "Several separate shapes: the network expects one digit.",
    "low contrast": "Low contrast: the ink is hard to tell from the paper.",
  };
  statusView.textContent = verdicts[answer.verdict] || `Preprocessing: ${answer.verdict}.`;
  bars.querySelectorAll("li").forEach((row, digit) => {
    const p = answer.probabilities[digit];
    row.querySelector(".fill").style.width = `${(p * 100).toFixed(1)}%`;
    row.querySelector(".value").textContent = `${(p * 100).toFixed(1)}%`;
    row.classList.toggle("best", digit === answer.label);
  });
  paint(seen, answer.input);
  if (answer.features) answer.features.forEach((stage, i) => showStage(stage, ["c1", "c3"][i]));
}

function paint(canvas, rows) {
  const height = rows.length, width = rows[0].length;
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  rows.forEach((row, y) => row.forEach((value, x) => {
    const at = 4 * (y * width + x);
    image.data[at] = image.data[at + 1] = image.data[at + 2] = value;
    image.data[at + 3] = 255;
  }));
  context.putImageData(image, 0, 0);
}

function showStage(stage, id) {
  const holder = document.getElementById(id);
  document.getElementById(`${id}-shape`).textContent =
    `${stage.shape[0]} maps of ${stage.shape[1]}×${stage.shape[2]} (layer ${stage.layer})`;
  while (holder.children.length < stage.maps.length) {
    const figure = document.createElement("figure");
    figure.appendChild(document.createElement("canvas"));
    figure.appendChild(document.createElement("figcaption"));
    holder.appendChild(figure);
  }
  stage.maps.forEach((map, i) => {
    const figure = holder.children[i];
    paint(figure.querySelector("canvas"), map.pixels);
    figure.querySelector("figcaption").textContent = `${i + 1}`;
    figure.title = `map ${i + 1}: values ${map.min.toFixed(2)} to ${map.max.toFixed(2)}`;
  });
}

document.getElementById("clear").addEventListener("click", () => {
  clearTimeout(timer);
  timer = null;
  latest++; // an answer still in flight is for the old drawing
  blankPad();
  labelView.textContent = "?";
  confidenceView.textContent = "";
  statusView.textContent = "Draw a digit to begin.";
  statusView.className = "";
  bars.querySelectorAll("li").forEach((row) => {
    row.querySelector(".fill").style.width = "0";
    row.querySelector(".value").textContent = "–";
    row.classList.remove("best");
  });
  for (const id of ["c1", "c3"]) document.getElementById(id).replaceChildren();
  paint(seen, Array.from({ length: 28 }, () => new Array(28).fill(0)));
  result.dataset.state = "empty";
});

document.getElementById("upload").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  clearTimeout(timer);
  timer = null;
  showPhoto(file);
  send(file, file.type || "application/octet-stream");
  event.target.value = "";
});

function showPhoto(file) {
  const url = URL.createObjectURL(file);
  const photo = new Image();
  photo.onload = () => {
    blankPad();
    const scale = Math.min(pad.width / photo.width, pad.height / photo.height);
    const w = photo.width * scale, h = photo.height * scale;
    pen.drawImage(photo, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    inked = true;
    URL.revokeObjectURL(url);
  };
  photo.onerror = () => URL.revokeObjectURL(url);
  photo.src = url;
}

blankPad();
buildBars();

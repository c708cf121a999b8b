// The avatarbot page: a form that posts to /api/jobs, then follows the job until its clip plays.
// Every sentence comes from the server (/api/config's texts, the job's status), in the reader's
// language: the browser's language goes with every request as ?lang=.
"use strict";

const LANGUAGE = navigator.language || "en";
const POLL_MS = 500;
const OFFLINE_RETRY_MS = 2000;
const STORED_JOB = "avatarbot-job";

const $ = (id) => document.getElementById(id);
const page = {
  texts: {},
  config: null,
  photo: null, // a File the reader chose
  example: false, // or the example photo
  recording: null, // a Blob from the microphone
  recorder: null,
  tab: "text",
  jobId: null,
  shownClip: null,
  timer: null, // the one pending poll
};

function pollLater(jobId, delay) {
  clearTimeout(page.timer);
  page.timer = setTimeout(() => poll(jobId), delay);
}

async function api(path, options = {}) {
  const separator = path.includes("?") ? "&" : "?";
  const response = await fetch(`${path}${separator}lang=${encodeURIComponent(LANGUAGE)}`, {
    credentials: "same-origin",
    ...options,
    headers: { "X-Requested-With": "avatarbot", ...(options.headers || {}) },
  });
  let body = {};
  try {
    body = await response.json();
  } catch (error) {
    body = {};
  }
  return { ok: response.ok, status: response.status, body };
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

// --- setup ---------------------------------------------------------------------------------------
async function start() {
  let answer;
  try {
    answer = await api("/api/config");
  } catch (error) {
    showError("The server isn't answering.");
    return;
  }
  const config = answer.body;
  page.config = config;
  page.texts = config.texts;
  document.documentElement.lang = config.language;
  document.title = `avatarbot: ${page.texts.title}`;
  for (const element of document.querySelectorAll("[data-text]")) {
    const text = page.texts[element.dataset.text];
    if (text) element.textContent = text;
  }
  $("text").placeholder = page.texts.text_placeholder;
  $("text").maxLength = config.max_text_chars;
  fillSelect($("voice"), config.voices, config.voice);
  fillSelect($("quality"), config.qualities, config.quality);
  $("motion").value = config.motion;
  $("use-example").hidden = !config.example_photo;
  if (!config.signed_in) {
    $("login").hidden = false;
    $("request").hidden = true;
    $("password").focus();
    return;
  }
  $("login").hidden = true;
  $("request").hidden = false;
  const stored = localStorage.getItem(STORED_JOB);
  if (stored) follow({ id: stored }, { quietIfGone: true });
}

function fillSelect(select, choices, chosen) {
  select.replaceChildren(
    ...choices.map((choice) => {
      const option = new Option(choice.label, choice.value);
      option.selected = choice.value === chosen;
      return option;
    }),
  );
}

async function signIn(event) {
  event.preventDefault();
  showError("");
  const answer = await api("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ password: $("password").value }),
  });
  $("password").value = "";
  if (!answer.ok) {
    showError(answer.body.error || page.texts.wrong_password);
    return;
  }
  await start();
}

// --- the request ---------------------------------------------------------------------------------
function choosePhoto() {
  const file = $("photo").files[0];
  page.photo = file || null;
  page.example = false;
  showPhoto(file ? URL.createObjectURL(file) : null);
}

function chooseExample() {
  page.photo = null;
  page.example = true;
  $("photo").value = "";
  showPhoto("/api/example-photo");
}

function showPhoto(url) {
  $("photo-preview").hidden = !url;
  if (url) $("photo-preview").src = url;
}

function chooseTab(tab) {
  page.tab = tab;
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === tab));
  }
  for (const panel of document.querySelectorAll("[data-panel]")) {
    panel.hidden = panel.dataset.panel !== tab;
  }
}

async function toggleRecording() {
  if (page.recorder && page.recorder.state === "recording") {
    page.recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    showError(page.texts.no_microphone);
    return;
  }
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = () => {
    stream.getTracks().forEach((track) => track.stop());
    page.recording = new Blob(chunks, { type: recorder.mimeType });
    $("recording").src = URL.createObjectURL(page.recording);
    $("recording").hidden = false;
    $("record").textContent = page.texts.record_start;
    $("record-state").textContent = page.texts.recorded;
  };
  page.recorder = recorder;
  recorder.start();
  showError("");
  $("record").textContent = page.texts.record_stop;
  $("record-state").textContent = page.texts.recording;
}

function recordingName(blob) {
  const type = blob.type || "";
  if (type.includes("ogg")) return "recording.ogg";
  if (type.includes("mp4")) return "recording.m4a";
  return "recording.webm";
}

async function submit(event) {
  event.preventDefault();
  showError("");
  const form = new FormData();
  if (page.photo) form.append("photo", page.photo, page.photo.name);
  else if (page.example) form.append("example", "1");
  else return showError(page.texts.need_photo);

  if (page.tab === "record") {
    if (!page.recording) return showError(page.texts.need_sound);
    form.append("audio", page.recording, recordingName(page.recording));
  } else if (page.tab === "upload") {
    const file = $("audio").files[0];
    if (!file) return showError(page.texts.need_sound);
    form.append("audio", file, file.name);
  } else {
    if (!$("text").value.trim()) return showError(page.texts.need_sound);
    form.append("text", $("text").value);
    form.append("voice_name", $("voice").value);
  }
  // A browser sends the whole file before it can read a refusal: say it here instead.
  for (const [, value] of form) {
    if (value instanceof Blob && value.size > page.config.max_upload_bytes) return showError(page.texts.too_big);
  }
  form.append("quality", $("quality").value);
  form.append("motion", $("motion").value);

  $("submit").disabled = true;
  $("submit").textContent = page.texts.sending;
  try {
    const answer = await api("/api/jobs", { method: "POST", body: form });
    if (!answer.ok) showError(answer.body.error || page.texts.unexpected);
    else follow(answer.body);
  } catch (error) {
    showError(page.texts.offline);
  } finally {
    $("submit").disabled = false;
    $("submit").textContent = page.texts.submit;
  }
}

// --- following a job -----------------------------------------------------------------------------
function follow(view, { quietIfGone = false } = {}) {
  page.jobId = view.id;
  $("said").textContent = view.said || ""; // e.g. "you asked for this exact clip a moment ago"
  localStorage.setItem(STORED_JOB, view.id);
  if (view.state) show(view);
  else poll(view.id, quietIfGone);
}

async function poll(jobId, quietIfGone = false) {
  if (jobId !== page.jobId) return; // a newer request took over
  let answer;
  try {
    answer = await api(`/api/jobs/${jobId}`);
  } catch (error) {
    $("status").textContent = page.texts.offline;
    pollLater(jobId, OFFLINE_RETRY_MS);
    return;
  }
  if (jobId !== page.jobId) return;
  if (answer.status === 401) {
    start(); // signed out (the password changed): ask for it again
    return;
  }
  if (answer.status === 404) {
    localStorage.removeItem(STORED_JOB);
    if (!quietIfGone) showError(page.texts.job_gone);
    return;
  }
  if (!answer.ok) {
    $("status").textContent = answer.body.error || page.texts.unexpected;
    pollLater(jobId, OFFLINE_RETRY_MS);
    return;
  }
  show(answer.body);
}

function show(view) {
  $("job").hidden = false;
  $("status").textContent = view.status;
  $("notes").textContent = (view.notes || []).join(" ");
  const progress = $("progress");
  progress.hidden = view.finished;
  if (view.state === "queued") progress.removeAttribute("value"); // indeterminate while waiting
  else progress.value = view.fraction;
  $("cancel").hidden = !view.active;
  $("actions").hidden = !view.finished;
  $("download").hidden = !view.clip_url;
  if (view.clip_url && page.shownClip !== view.clip_url) {
    page.shownClip = view.clip_url;
    $("clip").src = view.clip_url;
    $("clip").hidden = false;
    $("download").href = view.download_url;
  }
  if (!view.clip_url) {
    page.shownClip = null;
    $("clip").hidden = true;
    $("clip").removeAttribute("src");
  }
  if (!view.finished) pollLater(view.id, POLL_MS);
}

async function act(action) {
  const jobId = page.jobId;
  if (!jobId) return;
  showError("");
  const answer = await api(`/api/jobs/${jobId}/${action}`, { method: "POST" });
  if (!answer.ok) {
    showError(answer.body.error || page.texts.unexpected);
    return;
  }
  if (action === "again") follow(answer.body);
  else if (jobId === page.jobId) show(answer.body);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", signIn);
  $("request").addEventListener("submit", submit);
  $("photo").addEventListener("change", choosePhoto);
  $("use-example").addEventListener("click", chooseExample);
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.addEventListener("click", () => chooseTab(button.dataset.tab));
  }
  $("record").addEventListener("click", toggleRecording);
  $("cancel").addEventListener("click", () => act("cancel"));
  $("again").addEventListener("click", () => act("again"));
  start();
});

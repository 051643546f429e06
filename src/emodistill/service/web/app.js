/* EmoDistill web page: upload or record audio, POST it to the service, show the answer.
 *
 * No build step and no third-party code: the page has to work offline. Recording uses the
 * Web Audio API (not MediaRecorder) and encodes a 16 kHz 16-bit WAV in the browser, so the
 * server only ever receives a format soundfile reads without ffmpeg (webm/opus would not be).
 *
 * While the microphone records, its samples also go to the WebSocket /stream as 16 kHz s16le
 * PCM (about every 100 ms), and each window's event redraws the bars and the timeline live.
 * The recording context runs at 16 kHz where the browser allows it (the browser resamples the
 * microphone); elsewhere there is no live timeline, only the one after Stop.
 *
 * A student.speaker_norm model (/info "speaker_norm") also takes a speaker profile with each
 * upload (multipart field "profile") and running speaker statistics on the live stream
 * (/stream?speaker_norm=1); the page says which statistics were used (docs/speaker.md).
 */
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const els = {
    modelInfo: $("model-info"),
    limits: $("limits"),
    fileInput: $("file-input"),
    dropZone: $("drop-zone"),
    recordButton: $("record-button"),
    recordText: $("record-text"),
    levelBar: $("level-bar"),
    status: $("status"),
    error: $("error"),
    player: $("player"),
    result: $("result"),
    resultLabel: $("result-label"),
    resultConf: $("result-conf"),
    resultFile: $("result-file"),
    bars: $("bars"),
    timelineSection: $("timeline-section"),
    timeline: $("timeline"),
    timelineSummary: $("timeline-summary"),
    axis: $("timeline-axis"),
    speakerSection: $("speaker-section"),
    profileInput: $("profile-input"),
    profileClear: $("profile-clear"),
    profileStatus: $("profile-status"),
    liveSpeakerNorm: $("live-speaker-norm"),
  };

  // Segmentation sent with every request; the server's defaults are the same.
  const SEGMENT = { window: 3, hop: 1.5 };
  // Sample rate of every EmoDistill model: recordings are resampled to it before upload.
  const TARGET_RATE = 16000;
  // Live streaming: samples per WebSocket message (100 ms at 16 kHz).
  const LIVE_CHUNK = 1600;
  // Shorter recordings carry no usable cue (and are usually an accidental click).
  const MIN_RECORD_SECONDS = 0.3;

  const state = {
    labels: null, // label order from /info (bars follow it)
    maxUploadBytes: null,
    maxSeconds: null,
    requestId: 0, // only the newest request may update the page
    playerUrl: null,
    recorder: null,
    speakerNorm: false, // the model takes speaker statistics (/info)
    profile: null, // the chosen speaker-profile File, sent with every upload
  };

  // ------------------------------------------------------------------ colours

  // Conventional colours for common emotion names; anything else takes the palette in order.
  const NAMED = {
    neutral: "#6b7688",
    neu: "#6b7688",
    calm: "#2a9d8f",
    happy: "#d89200",
    happiness: "#d89200",
    hap: "#d89200",
    joy: "#d89200",
    excited: "#e07b39",
    angry: "#d64545",
    anger: "#d64545",
    ang: "#d64545",
    sad: "#3b73d1",
    sadness: "#3b73d1",
    fear: "#8e5cc8",
    fearful: "#8e5cc8",
    disgust: "#4f9d52",
    disgusted: "#4f9d52",
    surprise: "#d9488f",
    surprised: "#d9488f",
    contempt: "#8d6e63",
    frustrated: "#b5651d",
  };
  const PALETTE = ["#3d5afe", "#00897b", "#c2185b", "#7b1fa2", "#ef6c00", "#5d4037", "#0277bd"];
  const assigned = new Map();

  function colourFor(label) {
    const key = String(label).toLowerCase();
    if (NAMED[key]) return NAMED[key];
    if (!assigned.has(key)) assigned.set(key, PALETTE[assigned.size % PALETTE.length]);
    return assigned.get(key);
  }

  // White or near-black text, whichever reads better on `hex` (WCAG relative luminance).
  function textOn(hex) {
    const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
    const lin = c.map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    const lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
    return (1.05 / (lum + 0.05)) >= ((lum + 0.05) / 0.05) ? "#ffffff" : "#14171f";
  }

  // ------------------------------------------------------------------ formatting

  const pct = (p) => `${(100 * p).toFixed(1)}%`;

  function fmtTime(s) {
    if (s < 60) return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    const r = Math.round(s - 60 * m);
    return `${m}:${String(r).padStart(2, "0")}`;
  }

  function fmtBytes(n) {
    return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MB` : `${Math.ceil(n / 1024)} kB`;
  }

  function el(tag, attrs = {}, text = null) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== null) node.textContent = text;
    return node;
  }

  // ------------------------------------------------------------------ status and errors

  function setStatus(text, busy = false) {
    els.status.textContent = text;
    els.status.classList.toggle("busy", busy);
  }

  function showError(text) {
    els.error.textContent = text;
    els.error.hidden = false;
    setStatus("");
  }

  function clearError() {
    els.error.textContent = "";
    els.error.hidden = true;
  }

  // FastAPI errors are {"detail": "message"} or, for request validation, a list of objects.
  function detailText(body) {
    if (!body || body.detail === undefined) return "";
    const d = body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) {
      return d.map((x) => (x && x.msg ? `${(x.loc || []).join(".")}: ${x.msg}` : String(x))).join("; ");
    }
    return JSON.stringify(d);
  }

  function errorMessage(status, body, name) {
    let detail = detailText(body);
    // The service names the file first ("clip.wav: audio too long ..."); say it only once.
    if (detail.startsWith(`${name}: `)) detail = detail.slice(name.length + 2);
    const quoted = `“${name}”`;
    // A refused speaker profile ("profile alice.json: ...") is not the audio's fault.
    if (detail.startsWith("profile ")) return `The speaker profile was refused: ${detail}`;
    const known = {
      413: [`${quoted} was refused:`, `${quoted} is too large or too long for this server.`],
      415: [`${quoted} is not a supported audio format:`, `${quoted} is not a supported format.`],
      422: [`${quoted} could not be used as audio:`, `${quoted} could not be used as audio.`],
      503: [`${quoted} was not analysed, the server is busy:`, `The server is busy; try again.`],
    }[status];
    if (known) return detail ? `${known[0]} ${detail}` : known[1];
    const what = status >= 500 ? "The server failed while analysing" : "The request failed for";
    return `${what} ${quoted} (HTTP ${status})${detail ? `: ${detail}` : "."}`;
  }

  // ------------------------------------------------------------------ model information

  async function loadInfo() {
    let info;
    try {
      const resp = await fetch("info", { headers: { Accept: "application/json" } });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      info = await resp.json();
    } catch (err) {
      els.modelInfo.textContent = `Could not read the model information (${err.message}).`;
      els.modelInfo.dataset.state = "error";
      return;
    }
    state.labels = Array.isArray(info.labels) ? info.labels.map(String) : null;
    if (info.max_upload_mb) state.maxUploadBytes = info.max_upload_mb * 1024 * 1024;
    if (info.max_seconds) state.maxSeconds = Number(info.max_seconds);
    if (typeof info.window === "number") SEGMENT.window = info.window;
    if (typeof info.hop === "number") SEGMENT.hop = info.hop;
    state.speakerNorm = info.speaker_norm === true;
    els.speakerSection.hidden = !state.speakerNorm;
    renderInfo(info);
  }

  function renderInfo(info) {
    const dl = el("dl");
    const row = (term, value) => {
      if (value === undefined || value === null || value === "") return;
      dl.append(el("dt", {}, term));
      const dd = el("dd");
      if (value instanceof Node) dd.append(value);
      else dd.textContent = String(value);
      dl.append(dd);
    };
    const folder = info.model_dir ?? info.model_path ?? info.path ?? info.model;
    row("Model folder", folder);
    // The model card's one-line summary (absent for folders saved before cards existed).
    if (typeof info.summary === "string") row("About", info.summary);
    if (state.labels) {
      const chips = document.createDocumentFragment();
      for (const label of state.labels) {
        const colour = colourFor(label);
        const chip = el("span", { class: "chip", "data-label": label }, label);
        chip.style.background = colour;
        chip.style.color = textOn(colour);
        chips.append(chip);
      }
      row("Labels", chips);
    }
    const backbone = info.backbone ?? info.encoder ?? info.encoder_name;
    const source = info.encoder_source;
    row("Backbone", backbone && source && source !== backbone ? `${backbone} (${source})` : backbone);
    if (info.sample_rate) row("Sample rate", `${info.sample_rate} Hz`);
    if (typeof info.speaker_norm === "boolean") {
      row("Speaker adaptation", info.speaker_norm ? "yes (speaker profile or live statistics)" : "no");
    }
    els.modelInfo.replaceChildren(el("p", { class: "visually-hidden" }, "Loaded model:"), dl);
    els.modelInfo.dataset.state = "ready";

    const limits = [];
    if (info.max_upload_mb) limits.push(`Up to ${info.max_upload_mb} MB`);
    if (info.max_seconds) limits.push(`at most ${fmtTime(Number(info.max_seconds))}`);
    els.limits.textContent = limits.length ? ` ${limits.join(", ")}.` : "";
  }

  // ------------------------------------------------------------------ prediction

  // One POST /predict; resolves to {body} or {error: words for the page}.
  async function post(blob, name, query) {
    const form = new FormData();
    form.append("file", blob, name);
    if (state.speakerNorm && state.profile) form.append("profile", state.profile, state.profile.name);
    let resp;
    try {
      resp = await fetch(`predict${query}`, { method: "POST", body: form });
    } catch (err) {
      return { error: `Could not reach the server to analyse “${name}” (${err.message}).` };
    }
    let body = null;
    try {
      body = await resp.json();
    } catch {
      body = null; // e.g. a proxy's HTML error page
    }
    if (!resp.ok) return { error: errorMessage(resp.status, body, name) };
    if (!body || typeof body.probabilities !== "object") {
      return { error: `The server's answer for “${name}” holds no probabilities.` };
    }
    return { body };
  }

  async function predict(blob, name) {
    const id = ++state.requestId;
    clearError();
    showAudio(blob);
    if (state.maxUploadBytes && blob.size > state.maxUploadBytes) {
      els.result.hidden = true;
      showError(
        `“${name}” is ${fmtBytes(blob.size)}; this server accepts at most ` +
          `${fmtBytes(state.maxUploadBytes)}.`
      );
      return;
    }
    setStatus(`Analysing “${name}” (${fmtBytes(blob.size)})…`, true);
    els.result.setAttribute("aria-busy", "true");
    // The headline is the whole-clip prediction, exactly what `emodistill predict` gives.
    // With segment=true the service's top-level label summarises the windows instead, so
    // the timeline is a second request, made once the headline is on screen.
    const whole = await post(blob, name, "");
    if (id !== state.requestId) return; // a newer file was chosen meanwhile
    if (whole.error) {
      els.result.removeAttribute("aria-busy");
      els.result.hidden = true;
      els.player.hidden = true; // often not playable audio at all
      showError(whole.error);
      return;
    }
    renderResult(whole.body, name);
    showSpeaker(whole.body);
    setStatus(`Analysing “${name}” window by window…`, true);
    const timed = await post(
      blob,
      name,
      `?segment=true&window=${SEGMENT.window}&hop=${SEGMENT.hop}`
    );
    if (id !== state.requestId) return;
    els.result.removeAttribute("aria-busy");
    if (timed.error) {
      showError(`No timeline: ${timed.error}`);
      return;
    }
    renderTimeline(timed.body.segments || [], timed.body.summary, name);
    setStatus(`Done: “${name}”.`);
  }

  function showAudio(blob) {
    if (state.playerUrl) URL.revokeObjectURL(state.playerUrl);
    state.playerUrl = URL.createObjectURL(blob);
    els.player.src = state.playerUrl;
    els.player.hidden = false;
  }

  function labelOrder(probabilities) {
    const keys = Object.keys(probabilities);
    if (!state.labels) return keys;
    const known = state.labels.filter((l) => l in probabilities);
    return known.concat(keys.filter((k) => !known.includes(k)));
  }

  function renderResult(res, name) {
    const probs = res.probabilities;
    const colour = colourFor(res.label);
    els.resultLabel.textContent = res.label;
    els.resultLabel.dataset.label = res.label;
    els.resultLabel.style.background = colour;
    els.resultLabel.style.color = textOn(colour);
    els.resultConf.textContent =
      typeof probs[res.label] === "number" ? `${pct(probs[res.label])} probability` : "";
    els.resultFile.textContent = `From “${name}”.`;

    const rows = labelOrder(probs).map((label) => {
      const p = Number(probs[label]);
      const c = colourFor(label);
      const row = el("div", {
        class: label === res.label ? "bar top" : "bar",
        role: "meter",
        "aria-valuemin": "0",
        "aria-valuemax": "100",
        "aria-valuenow": (100 * p).toFixed(1),
        "aria-valuetext": `${label}: ${pct(p)}`,
        "aria-label": label,
        "data-label": label,
        "data-prob": String(probs[label]), // full precision: tests compare it with the CLI
      });
      const fill = el("div", { class: "bar-fill" });
      fill.style.width = `${Math.max(0, Math.min(100, 100 * p))}%`;
      fill.style.background = c;
      const track = el("div", { class: "bar-track" });
      track.append(fill);
      row.append(el("span", { class: "bar-name" }, label), track, el("span", { class: "bar-value" }, pct(p)));
      return row;
    });
    els.bars.replaceChildren(...rows);
    renderTimeline([]); // the previous clip's timeline must not linger
    els.result.hidden = false;
  }

  // ------------------------------------------------------------------ timeline

  function renderTimeline(segs, summary = null, name = null, live = false) {
    els.timelineSection.dataset.live = String(live);
    const ends = segs.map((s) => s.end);
    const duration = summary && summary.duration ? summary.duration : Math.max(0, ...ends);
    if (name && duration) {
      els.resultFile.textContent = `From “${name}”, ${fmtTime(Number(duration.toFixed(1)))} of audio.`;
    }
    // One window means one label: the headline already says it.
    if (segs.length < (live ? 1 : 2)) {
      els.timeline.replaceChildren();
      els.axis.replaceChildren();
      els.timelineSection.hidden = true;
      return;
    }
    const t0 = Math.min(...segs.map((s) => s.start));
    const t1 = Math.max(...segs.map((s) => s.end));
    const span = Math.max(t1 - t0, 1e-6);
    // Windows overlap (hop < window): each window owns the stretch between the midpoints of
    // neighbouring window centres, so blocks tile the recording; neighbouring windows with the
    // same label merge into one block (the block's title still lists every window).
    const centres = segs.map((s) => (s.start + s.end) / 2);
    const runs = [];
    segs.forEach((seg, i) => {
      const from = i === 0 ? seg.start : (centres[i - 1] + centres[i]) / 2;
      const to = i === segs.length - 1 ? seg.end : (centres[i] + centres[i + 1]) / 2;
      const last = runs[runs.length - 1];
      if (last && last.label === seg.label) {
        last.to = to;
        last.windows.push(seg);
      } else {
        runs.push({ label: seg.label, from, to, windows: [seg] });
      }
    });
    const span1 = (s) => `${fmtTime(Number(s.start.toFixed(2)))}–${fmtTime(Number(s.end.toFixed(2)))}`;
    const items = runs.map((run) => {
      const colour = colourFor(run.label);
      const first = run.windows[0];
      const lastWin = run.windows[run.windows.length - 1];
      const parts = run.windows.map((w) => {
        const p = w.probabilities ? w.probabilities[w.label] : undefined;
        return `${span1(w)}${typeof p === "number" ? ` (${pct(p)})` : ""}`;
      });
      const desc =
        `${run.label} from ${fmtTime(Number(run.from.toFixed(1)))} to ` +
        `${fmtTime(Number(run.to.toFixed(1)))}; ` +
        `${run.windows.length === 1 ? "window" : "windows"} ${parts.join(", ")}`;
      const li = el("li", {
        class: "segment",
        "data-label": run.label,
        "data-start": String(first.start),
        "data-end": String(lastWin.end),
        "data-windows": String(run.windows.length),
      });
      li.style.left = `${(100 * (run.from - t0)) / span}%`;
      li.style.width = `${(100 * (run.to - run.from)) / span}%`;
      const button = el("button", { type: "button", title: desc, "aria-label": desc }, run.label);
      button.style.background = colour;
      button.style.color = textOn(colour);
      button.addEventListener("click", () => {
        els.player.currentTime = first.start;
        els.player.play().catch(() => {});
      });
      li.append(button);
      return li;
    });
    els.timeline.replaceChildren(...items);
    els.timelineSummary.textContent = summaryText(summary);
    els.timelineSection.hidden = false;

    const steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];
    const step = steps.find((s) => span / s <= 8) || steps[steps.length - 1];
    const ticks = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) {
      const tick = el("span", { class: "tick" }, fmtTime(Number(t.toFixed(2))));
      tick.style.left = `${(100 * (t - t0)) / span}%`;
      ticks.push(tick);
    }
    // A tick near the right edge is right-aligned so it stays inside the card.
    const lastTick = ticks[ticks.length - 1];
    if (lastTick && parseFloat(lastTick.style.left) > 92) lastTick.classList.add("last");
    els.axis.replaceChildren(...ticks);
    fitTimelineText();
  }

  function summaryText(summary) {
    if (!summary || !summary.dominant_label || !summary.label_fractions) return "";
    const parts = labelOrder(summary.label_fractions)
      .filter((l) => summary.label_fractions[l] > 0)
      .sort((a, b) => summary.label_fractions[b] - summary.label_fractions[a])
      .map((l) => `${l} ${pct(summary.label_fractions[l])}`);
    return `Share of the time: ${parts.join(", ")}.`;
  }

  // Hide block text that would be clipped (the label stays in the button's aria-label/title).
  function fitTimelineText() {
    for (const b of els.timeline.querySelectorAll("button")) {
      b.classList.remove("tight");
      if (b.scrollWidth > b.clientWidth + 1) b.classList.add("tight");
    }
  }

  // ------------------------------------------------------------------ speaker profile

  function setProfileStatus(text, st) {
    els.profileStatus.textContent = text;
    els.profileStatus.dataset.state = st;
  }

  const profileText = (p) => `speaker profile: ${p.name} (${p.clips} clip${p.clips === 1 ? "" : "s"}, ${Number(p.seconds).toFixed(1)} s)`;

  // What the server says it used: "profile" (with its clips and seconds) or "global".
  function showSpeaker(body) {
    if (!state.speakerNorm || !body) return;
    if (body.speaker_norm === "profile" && body.profile) setProfileStatus(profileText(body.profile), "used");
    else if (body.speaker_norm === "global") setProfileStatus("speaker profile: none (the training set's statistics)", "none");
  }

  // The chosen file is read here only to show its name and size; the server checks it.
  async function takeProfile(file) {
    state.profile = file || null;
    els.profileClear.hidden = !file;
    if (!file) {
      setProfileStatus("speaker profile: none", "none");
      return;
    }
    let p = null;
    try {
      const obj = JSON.parse(await file.text());
      if (obj && obj.format === "emodistill-speaker-profile") p = { name: file.name, clips: obj.clips, seconds: obj.seconds };
    } catch {
      p = null;
    }
    if (state.profile !== file) return; // another file was chosen meanwhile
    if (p) setProfileStatus(`${profileText(p)}, sent with the next upload`, "chosen");
    else setProfileStatus(`speaker profile: ${file.name} (does not look like a speaker profile)`, "chosen");
  }

  els.profileInput.addEventListener("change", () => {
    takeProfile(els.profileInput.files && els.profileInput.files[0]);
  });
  els.profileClear.addEventListener("click", () => {
    els.profileInput.value = "";
    takeProfile(null);
  });

  // ------------------------------------------------------------------ upload

  function takeFile(file) {
    if (!file) return;
    if (state.recorder) stopRecording(false);
    predict(file, file.name);
  }

  els.fileInput.addEventListener("change", () => {
    const file = els.fileInput.files && els.fileInput.files[0];
    takeFile(file);
    els.fileInput.value = ""; // choosing the same file again still fires "change"
  });

  for (const type of ["dragenter", "dragover"]) {
    els.dropZone.addEventListener(type, (ev) => {
      ev.preventDefault();
      ev.dataTransfer.dropEffect = "copy";
      els.dropZone.classList.add("dragover");
    });
  }
  for (const type of ["dragleave", "dragend"]) {
    els.dropZone.addEventListener(type, (ev) => {
      if (ev.target === els.dropZone || !els.dropZone.contains(ev.relatedTarget)) {
        els.dropZone.classList.remove("dragover");
      }
    });
  }
  els.dropZone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    els.dropZone.classList.remove("dragover");
    const files = ev.dataTransfer && ev.dataTransfer.files;
    if (files && files.length) takeFile(files[0]);
  });
  // A file dropped beside the zone must not navigate away from the page.
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => ev.preventDefault());

  // ------------------------------------------------------------------ recording

  // Runs on the audio thread: forwards each 128-sample block of channel 0 to the page.
  const TAP_SOURCE = `
    class EmoDistillTap extends AudioWorkletProcessor {
      process(inputs) {
        const ch = inputs[0] && inputs[0][0];
        if (ch) this.port.postMessage(ch.slice(0));
        return true;
      }
    }
    registerProcessor("emodistill-tap", EmoDistillTap);
  `;

  async function startRecording() {
    clearError();
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError(
        "This browser cannot record here: microphone access needs a secure page " +
          "(https, or this server opened as localhost)."
      );
      return;
    }
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) {
      showError("This browser has no Web Audio API, so it cannot record. Upload a file instead.");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
    } catch (err) {
      showError(`The microphone could not be opened (${err.name || "error"}: ${err.message}).`);
      return;
    }
    let ctx;
    try {
      ctx = new Ctx({ sampleRate: TARGET_RATE }); // the browser resamples the microphone
    } catch {
      ctx = new Ctx();
    }
    const rec = { stream, ctx, chunks: [], samples: 0, started: performance.now(), timer: null, node: null };
    rec.live = ctx.sampleRate === TARGET_RATE ? openLive(rec) : null;
    const push = (block) => {
      rec.chunks.push(block);
      rec.samples += block.length;
      if (rec.live) rec.live.add(block);
      let sum = 0;
      for (let i = 0; i < block.length; i++) sum += block[i] * block[i];
      rec.level = Math.sqrt(sum / block.length);
    };
    const source = ctx.createMediaStreamSource(stream);
    try {
      const url = URL.createObjectURL(new Blob([TAP_SOURCE], { type: "application/javascript" }));
      await ctx.audioWorklet.addModule(url);
      URL.revokeObjectURL(url);
      rec.node = new AudioWorkletNode(ctx, "emodistill-tap", { numberOfInputs: 1, numberOfOutputs: 1 });
      rec.node.port.onmessage = (ev) => push(ev.data);
    } catch {
      // Older browsers: ScriptProcessorNode is deprecated but still records the same samples.
      rec.node = ctx.createScriptProcessor(4096, 1, 1);
      rec.node.onaudioprocess = (ev) => push(new Float32Array(ev.inputBuffer.getChannelData(0)));
    }
    source.connect(rec.node);
    rec.node.connect(ctx.destination); // outputs silence; keeps the node pulled by the graph
    if (ctx.state === "suspended") await ctx.resume();
    state.recorder = rec;

    els.recordButton.setAttribute("aria-pressed", "true");
    els.recordButton.closest(".record").classList.add("recording");
    setStatus("");
    const tick = () => {
      const secs = (performance.now() - rec.started) / 1000;
      els.recordText.textContent = `Stop · ${fmtTime(Math.floor(secs))}`;
      els.levelBar.style.width = `${Math.min(100, 400 * (rec.level || 0))}%`;
      if (state.maxSeconds && secs >= state.maxSeconds) stopRecording(true);
    };
    tick();
    rec.timer = setInterval(tick, 100);
  }

  async function stopRecording(send) {
    const rec = state.recorder;
    if (!rec) return;
    state.recorder = null;
    clearInterval(rec.timer);
    rec.node.disconnect();
    for (const track of rec.stream.getTracks()) track.stop();
    const rate = rec.ctx.sampleRate;
    if (rec.live) rec.live.end();
    await rec.ctx.close();
    els.recordButton.setAttribute("aria-pressed", "false");
    els.recordButton.closest(".record").classList.remove("recording");
    els.recordText.textContent = "Record";
    els.levelBar.style.width = "0";
    if (!send) return;

    const seconds = rec.samples / rate;
    if (seconds < MIN_RECORD_SECONDS) {
      showError(`The recording is too short (${seconds.toFixed(2)} s). Hold on a little longer.`);
      return;
    }
    const samples = new Float32Array(rec.samples);
    let at = 0;
    for (const c of rec.chunks) {
      samples.set(c, at);
      at += c.length;
    }
    setStatus("Preparing the recording…", true);
    const pcm = await resample(samples, rate, TARGET_RATE);
    const stamp = new Date().toISOString().slice(11, 19).replaceAll(":", "");
    await predict(encodeWav(pcm), `recording-${stamp}.wav`);
  }

  // ------------------------------------------------------------------ live timeline

  // A WebSocket session on /stream: add(block) queues samples, end() sends the rest and "end".
  function openLive(rec) {
    const adapt = state.speakerNorm && els.liveSpeakerNorm.checked;
    const query = `window=${SEGMENT.window}&hop=${SEGMENT.hop}${adapt ? "&speaker_norm=1" : ""}`;
    const url = new URL(`stream?${query}`, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      return null; // no live timeline; the recording still works
    }
    ws.binaryType = "arraybuffer";
    const live = { ws, queue: [], queued: 0, segments: [], ended: false };
    const send = (all) => {
      if (ws.readyState !== WebSocket.OPEN || (!all && live.queued < LIVE_CHUNK)) return;
      if (live.queued) ws.send(pcm16(live.queue, live.queued));
      live.queue = [];
      live.queued = 0;
    };
    ws.onopen = () => {
      send(live.ended);
      if (live.ended) ws.send(JSON.stringify({ type: "end" }));
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === "end") ws.close();
      if (typeof msg.error === "string" && state.recorder === rec) showError(`Live timeline: ${msg.error}`);
      // Only while this recording is the current one: after Stop the upload's answer rules.
      if (state.recorder !== rec || typeof msg.start !== "number" || !msg.probabilities) return;
      live.segments.push(msg);
      renderResult(msg, "the microphone");
      els.resultFile.textContent = `Live: window ${fmtTime(msg.start)}–${fmtTime(msg.end)}.`;
      renderTimeline(live.segments, null, null, true);
      if (msg.speaker_norm) {
        const sn = msg.speaker_norm;
        setProfileStatus(`live speaker statistics: ${sn.windows} window${sn.windows === 1 ? "" : "s"}, ${Number(sn.seconds).toFixed(1)} s`, "live");
      }
    };
    live.add = (block) => {
      live.queue.push(block);
      live.queued += block.length;
      send(false);
    };
    live.end = () => {
      live.ended = true;
      if (ws.readyState === WebSocket.OPEN) {
        send(true);
        ws.send(JSON.stringify({ type: "end" }));
      }
    };
    return live;
  }

  // Float blocks -> one s16le buffer, scaled exactly as encodeWav does (same samples).
  function pcm16(blocks, n) {
    const out = new Int16Array(n);
    let at = 0;
    for (const b of blocks) {
      for (let i = 0; i < b.length; i++) {
        const s = Math.max(-1, Math.min(1, b[i]));
        out[at++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      }
    }
    return out.buffer;
  }

  // Band-limited resampling by the browser's own resampler (a 16 kHz OfflineAudioContext).
  async function resample(samples, from, to) {
    if (from === to || typeof OfflineAudioContext === "undefined") return { samples, rate: from };
    const length = Math.max(1, Math.round((samples.length * to) / from));
    const off = new OfflineAudioContext(1, length, to);
    const buffer = off.createBuffer(1, samples.length, from);
    buffer.copyToChannel(samples, 0);
    const src = off.createBufferSource();
    src.buffer = buffer;
    src.connect(off.destination);
    src.start();
    const out = await off.startRendering();
    return { samples: out.getChannelData(0), rate: to };
  }

  // 16-bit PCM mono RIFF/WAVE: the format every audio reader accepts.
  function encodeWav({ samples, rate }) {
    const view = new DataView(new ArrayBuffer(44 + 2 * samples.length));
    const ascii = (at, s) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
    ascii(0, "RIFF");
    view.setUint32(4, 36 + 2 * samples.length, true);
    ascii(8, "WAVE");
    ascii(12, "fmt ");
    view.setUint32(16, 16, true); // fmt chunk size
    view.setUint16(20, 1, true); // PCM
    view.setUint16(22, 1, true); // mono
    view.setUint32(24, rate, true);
    view.setUint32(28, 2 * rate, true); // byte rate
    view.setUint16(32, 2, true); // block align
    view.setUint16(34, 16, true); // bits per sample
    ascii(36, "data");
    view.setUint32(40, 2 * samples.length, true);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      view.setInt16(44 + 2 * i, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return new Blob([view.buffer], { type: "audio/wav" });
  }

  els.recordButton.addEventListener("click", () => {
    if (state.recorder) stopRecording(true);
    else startRecording();
  });

  window.addEventListener("resize", fitTimelineText);
  loadInfo();
})();

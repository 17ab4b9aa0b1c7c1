// wf's web UI: live regions, local times, ticking clocks, and the actions.
// Hand-written, no build step, no dependency, nothing fetched from elsewhere.
(() => {
  "use strict";
  const body = document.body;
  const API = body.dataset.api;
  const BASE = body.dataset.base;
  const enc = encodeURIComponent;
  // the server's clock minus ours: countdowns and running times use the server's notion of now
  let skew = 0;
  const now = () => Date.now() / 1000 + skew;

  // ---------------------------------------------------------------- times

  const dateFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const relFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
    ["hour", 3600], ["minute", 60], ["second", 1]];

  function relative(seconds) {
    const abs = Math.abs(seconds);
    for (const [unit, size] of UNITS) {
      if (abs >= size || unit === "second") return relFormat.format(Math.round(seconds / size), unit);
    }
    return "";
  }

  // the same shape as the server's duration(): 850 ms, 4.2 s, 3 min 5 s, 2 h 4 min, 3 d 2 h
  function span(seconds) {
    seconds = Math.max(0, seconds);
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    let minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${Math.floor(seconds % 60)} s`;
    let hours = Math.floor(minutes / 60);
    minutes %= 60;
    if (hours < 48) return `${hours} h ${minutes} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  function tick() {
    const t = now();
    for (const el of document.querySelectorAll("time[data-ts]")) {
      const ts = Number(el.dataset.ts);
      const text = dateFormat.format(new Date(ts * 1000));
      el.textContent = "rel" in el.dataset ? `${text} · ${relative(ts - t)}` : text;
      el.title = el.getAttribute("datetime");
    }
    for (const el of document.querySelectorAll("[data-since]")) {
      el.textContent = span(t - Number(el.dataset.since));
    }
    for (const el of document.querySelectorAll("[data-until]")) {
      const left = Number(el.dataset.until) - t;
      el.textContent = left > 0 ? `(in ${span(left)})` : "(due)";
    }
    for (const line of document.querySelectorAll("ol.timeline")) layout(line, t);
  }

  // bars on the instance's time axis; while it runs the axis ends at now, so every bar moves
  function layout(line, t) {
    const t0 = Number(line.dataset.t0);
    const t1 = line.dataset.t1 === "" ? t : Number(line.dataset.t1);
    const total = Math.max(t1 - t0, 1e-3);
    for (const seg of line.querySelectorAll(".seg")) {
      const s = Number(seg.dataset.s);
      const e = seg.dataset.e === "" ? t1 : Number(seg.dataset.e);
      const left = Math.min(100, Math.max(0, ((s - t0) / total) * 100));
      const width = Math.min(100 - left, Math.max(0, ((e - s) / total) * 100));
      seg.style.left = `${left}%`;
      seg.style.width = `${width}%`;
    }
  }

  // ---------------------------------------------------------------- step panels

  const instanceEl = () => document.querySelector(".instance");
  const openKey = () => {
    const el = instanceEl();
    return el ? `wf-open:${el.dataset.workflow}/${el.dataset.id}` : null;
  };
  const openSteps = new Set(JSON.parse(sessionStorage.getItem(openKey()) || "[]"));

  function showStep(li, open) {
    const button = li.querySelector(".step-toggle");
    const panel = li.querySelector(".step-detail");
    if (!button || !panel) return;
    button.setAttribute("aria-expanded", String(open));
    panel.hidden = !open;
  }

  function restoreSteps() {
    for (const li of document.querySelectorAll("li.step")) showStep(li, openSteps.has(li.dataset.step));
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest(".step-toggle");
    if (!button) return;
    const li = button.closest("li.step");
    const open = button.getAttribute("aria-expanded") !== "true";
    showStep(li, open);
    if (open) openSteps.add(li.dataset.step); else openSteps.delete(li.dataset.step);
    const key = openKey();
    if (key) sessionStorage.setItem(key, JSON.stringify([...openSteps]));
  });

  // ---------------------------------------------------------------- live

  const liveState = document.getElementById("live-state");

  function setLive(on) {
    if (!liveState) return;
    liveState.className = `live-state ${on ? "on" : "off"}`;
    liveState.textContent = on ? "Live" : "Reconnecting…";
  }

  // swap in the regions marked data-live; everything else (forms, focus, scroll) stays
  function apply(update) {
    if (typeof update.now === "number") skew = update.now - Date.now() / 1000;
    const fresh = document.createElement("template");
    fresh.innerHTML = update.main;
    const active = document.activeElement;
    const focusKey = active && active.closest("[data-live]") ? focusKeyOf(active) : null;
    const opened = [...document.querySelectorAll("[data-live] li.step details[open]")].map(detailsKey);
    for (const next of fresh.content.querySelectorAll("[data-live]")) {
      const current = document.querySelector(`[data-live="${CSS.escape(next.dataset.live)}"]`);
      if (current && current.innerHTML !== next.innerHTML) current.innerHTML = next.innerHTML;
    }
    restoreSteps();
    for (const key of opened) {
      const again = document.querySelector(key);
      if (again) again.open = true;
    }
    tick();
    if (focusKey) {
      const again = document.querySelector(focusKey);
      if (again) again.focus();
    }
  }

  function detailsKey(details) {
    const step = details.closest("li.step");
    return `li.step[data-step="${CSS.escape(step.dataset.step)}"] details.${CSS.escape(details.className)}`;
  }

  function focusKeyOf(el) {
    if (el.id) return `#${CSS.escape(el.id)}`;
    if (el.dataset.action) {
      const step = el.closest("li.step");
      const where = step ? `li.step[data-step="${CSS.escape(step.dataset.step)}"] ` : "";
      return `${where}[data-action="${CSS.escape(el.dataset.action)}"]`;
    }
    const step = el.closest("li.step");
    return step ? `li.step[data-step="${CSS.escape(step.dataset.step)}"] .step-toggle` : null;
  }

  function follow() {
    if (!body.hasAttribute("data-live-page") || !window.EventSource) return;
    const url = new URL(location.href);
    url.searchParams.set("since", body.dataset.seq);
    const stream = new EventSource(url);
    stream.addEventListener("open", () => setLive(true));
    stream.addEventListener("error", () => setLive(false));
    stream.addEventListener("update", (event) => apply(JSON.parse(event.data)));
    stream.addEventListener("gone", () => {
      stream.close();
      setLive(false);
      say("This instance was deleted.", false);
    });
  }

  // ---------------------------------------------------------------- talking to the API

  // Every state change: same-origin JSON with the X-WF-Request header (what the API's
  // cross-site protection, and the UI session cookie when WF_TOKEN is set, require).
  async function call(method, path, payload) {
    const init = {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-WF-Request": "1" },
    };
    if (payload !== undefined) init.body = JSON.stringify(payload);
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (error) {
      return { ok: false, message: `The server could not be reached (${error.message}).` };
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch (_) {
      answer = null;
    }
    if (response.ok && answer && answer.success) return { ok: true, result: answer.result };
    const first = answer && answer.errors && answer.errors[0];
    return {
      ok: false,
      status: response.status,
      message: first ? first.message : `The server answered ${response.status} ${response.statusText}.`,
    };
  }

  function say(message, ok) {
    const out = document.getElementById("action-result");
    if (!out) return;
    out.textContent = message;
    out.className = `action-result ${ok ? "ok" : "refused"}`;
    out.setAttribute("role", ok ? "status" : "alert");
  }

  function fieldError(field, message) {
    const out = document.getElementById(field.getAttribute("aria-describedby"));
    field.setAttribute("aria-invalid", message ? "true" : "false");
    if (out) out.textContent = message || "";
    if (message) field.focus();
  }

  function parseJson(field, what, empty) {
    const text = field.value.trim();
    if (!text) return { value: empty };
    try {
      return { value: JSON.parse(text) };
    } catch (error) {
      fieldError(field, `${what} is not valid JSON: ${error.message}.`);
      return null;
    }
  }

  function checkId(field, what) {
    const value = field.value.trim();
    if (!value) return value;
    if (value.length > 100 || !new RegExp(field.dataset.pattern).test(value)) {
      fieldError(field, `"${value}" is not a valid ${what}: use 1-100 letters, digits, '_' or '-', not starting with '-'.`);
      return null;
    }
    return value;
  }

  const ACTION_DONE = {
    pause: "Pause requested: the instance pauses once any running step finishes.",
    resume: "Resumed.",
    terminate: "Terminated.",
    "terminate-rollback": "Terminating: the rollback handlers run first, newest step first.",
    restart: "Restarted from the start.",
  };

  async function act(button) {
    const inst = instanceEl();
    if (!inst) return;
    const path = `/workflows/${enc(inst.dataset.workflow)}/instances/${enc(inst.dataset.id)}`;
    const action = button.dataset.action;
    if (action === "delete") return confirmDelete(path, inst);
    let payload = { action };
    let done = ACTION_DONE[action];
    if (action === "terminate-rollback") payload = { action: "terminate", rollback: true };
    if (action === "restart-from") {
      const { name, count, type } = button.dataset;
      payload = { action: "restart", from: { name, count: Number(count), type } };
      done = `Restarted from step "${name}"${Number(count) > 1 ? ` #${count}` : ""}.`;
    }
    button.disabled = true;
    const result = await call("PATCH", `${path}/status`, payload);
    button.disabled = false;
    say(result.ok ? done : result.message, result.ok);
  }

  function confirmDelete(path, inst) {
    const dialog = document.getElementById("confirm-delete");
    dialog.returnValue = "";
    dialog.showModal();
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "delete") return;
      const result = await call("DELETE", path);
      if (!result.ok) return say(result.message, false);
      const back = new URLSearchParams({ workflow: inst.dataset.workflow, deleted: inst.dataset.id });
      location.assign(`${BASE}/instances?${back}`);
    }, { once: true });
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button && !button.closest("dialog")) act(button);
    const copy = event.target.closest("button[data-copy]");
    if (copy) copyText(copy);
  });

  async function copyText(button) {
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
    } catch (_) {
      const range = document.createRange();  // no clipboard access: select it for Ctrl+C
      range.selectNodeContents(button.previousElementSibling || button);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
    }
    button.classList.add("done");
    setTimeout(() => button.classList.remove("done"), 1200);
  }

  // ---------------------------------------------------------------- forms

  async function trigger(form) {
    const params = form.elements.params;
    const idField = form.elements.id;
    const problem = form.querySelector(".form-error");
    fieldError(params, "");
    fieldError(idField, "");
    problem.textContent = "";
    const parsed = parseJson(params, "Params", {});
    if (!parsed) return;
    const id = checkId(idField, "instance id");
    if (id === null) return;
    const body = id ? { params: parsed.value, id } : { params: parsed.value };
    const workflow = form.dataset.workflow;
    const result = await call("POST", `/workflows/${enc(workflow)}/instances`, body);
    if (!result.ok) {
      problem.textContent = result.message;
      return;
    }
    location.assign(`${BASE}/workflows/${enc(workflow)}/${enc(result.result.id)}`);
  }

  async function sendEvent(form) {
    const inst = instanceEl();
    const typeField = form.elements.type;
    const payloadField = form.elements.payload;
    fieldError(typeField, "");
    fieldError(payloadField, "");
    const type = typeField.value.trim();
    if (!type) return fieldError(typeField, "Give the event a type, e.g. approval.");
    if (checkId(typeField, "event type") === null) return;
    const parsed = parseJson(payloadField, "The payload", null);
    if (!parsed) return;
    const path = `/workflows/${enc(inst.dataset.workflow)}/instances/${enc(inst.dataset.id)}/events/${enc(type)}`;
    const result = await call("POST", path, parsed.value);
    say(result.ok ? `Event "${type}" sent.` : result.message, result.ok);
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.matches("form.trigger")) {
      event.preventDefault();
      trigger(form);
    } else if (form.matches("form.send-event")) {
      event.preventDefault();
      sendEvent(form);
    }
  });

  // ---------------------------------------------------------------- start

  if (body.dataset.now) skew = Number(body.dataset.now) - Date.now() / 1000;
  restoreSteps();
  tick();
  setInterval(() => { if (!document.hidden) tick(); }, 1000);
  follow();
})();

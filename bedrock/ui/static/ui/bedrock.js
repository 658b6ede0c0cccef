// Bedrock's web UI: a few behaviours, no build step. Every page works without it, less smoothly.
"use strict";

function setBadge(el, status) {
  if (!el || !status) return;
  el.textContent = status;
  el.className = "badge status-" + status.toLowerCase();
}

// A select that navigates as soon as it changes (the project switcher).
document.addEventListener("change", (event) => {
  const select = event.target.closest("select[data-autosubmit]");
  if (select) select.form.submit();
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  // Ask before anything that cannot be undone: stop, delete, revoke, archive.
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    return;
  }
  // One click, one request: disable the buttons once the browser has read the one pressed.
  if (form.hasAttribute("data-once")) {
    setTimeout(() => form.querySelectorAll("button").forEach((b) => (b.disabled = true)), 0);
  }
});

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const input = document.querySelector(button.dataset.copy);
  input.select();
  const done = () => (button.textContent = "Copied");
  if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, () => {});
  else if (document.execCommand("copy")) done();
});

// The run page: poll the run's status every second while it is active, and append new log text
// of every open step from the byte offset the page already shows.
function followRun(root) {
  const panels = new Map();
  root.querySelectorAll("[data-log]").forEach((el) => {
    const panel = {
      el,
      pre: el.querySelector("pre.log"),
      url: el.dataset.logUrl,
      offset: Number(el.dataset.offset || 0),
      queue: Promise.resolve(),
      auto: false,
      touched: false,
      status: el.dataset.status,  // as the page last showed it
    };
    panels.set(el.dataset.log, panel);
    el.addEventListener("toggle", () => {
      if (!panel.auto) panel.touched = true;  // the user chose: stop opening it for them
      panel.auto = false;
      if (el.open) pull(panel);
    });
    if (el.open) panel.pre.scrollTop = panel.pre.scrollHeight;
  });
  root.querySelectorAll("[data-open-log]").forEach((link) =>
    link.addEventListener("click", () => {
      const panel = panels.get(link.dataset.openLog);
      if (panel) panel.el.open = true;
    }),
  );

  // Pulls of one panel run one after another, so text is appended in order and never twice.
  function pull(panel) {
    panel.queue = panel.queue.then(() => drain(panel)).catch(() => {});
    return panel.queue;
  }

  async function drain(panel) {
    for (let chunk = 0; chunk < 50; chunk++) {
      const response = await fetch(`${panel.url}?offset=${panel.offset}`, {
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return;
      const data = await response.json();
      if (!data.text) return;
      const pre = panel.pre;
      const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
      pre.append(document.createTextNode(data.text));
      if (atBottom) pre.scrollTop = pre.scrollHeight;
      panel.offset = data.next_offset;
    }
  }

  function showOutcome(data) {
    setBadge(root.querySelector("[data-run-status]"), data.status);
    const duration = root.querySelector("[data-run-duration]");
    if (duration) duration.textContent = data.duration || "—";
    const failure = root.querySelector("[data-run-failure]");
    if (failure) {
      failure.textContent = data.failure_reason || "";
      failure.classList.toggle("hidden", !data.failure_reason);
      failure.classList.toggle("error", data.status === "Failed" || data.status === "Rejected");
    }
    const output = root.querySelector("[data-run-output]");
    if (output && data.output_model_version) {
      const link = document.createElement("a");
      link.href = data.output_model_version.url;
      link.textContent = data.output_model_version.label;
      output.replaceChildren(link);
    } else if (output && !data.active) {
      const pending = output.querySelector("[data-pending]");
      if (pending) pending.textContent = pending.dataset.pending;
    }
  }

  // What the steps log while the page is open (parameters, metrics, charts) is fetched again
  // when the status says it changed: at most every few seconds, and once more as the run ends.
  let trackingFetched = 0;
  async function refreshTracking(state, final) {
    if (state === undefined || state === root.dataset.trackingState) return;
    if (!final && Date.now() - trackingFetched < 3000) return;
    trackingFetched = Date.now();
    let response;
    try {
      response = await fetch(root.dataset.trackingUrl);
    } catch (error) {
      return;  // the next status says it changed still
    }
    if (!response.ok) return;
    const parts = document.createElement("template");
    parts.innerHTML = await response.text();
    parts.content.querySelectorAll("[data-tracking-part]").forEach((part) => {
      const shown = root.querySelector(`[data-tracking-part="${part.dataset.trackingPart}"]`);
      if (shown) shown.replaceWith(part);
    });
    root.dataset.trackingState = state;
    document.dispatchEvent(new CustomEvent("bedrock:charts"));
  }

  async function tick() {
    let data;
    try {
      const response = await fetch(root.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`status ${response.status}`);
      data = await response.json();
    } catch (error) {
      setTimeout(tick, 3000);  // the server restarts or the network blips: keep trying, slower
      return;
    }
    showOutcome(data);
    refreshTracking(data.tracking, !data.active);
    for (const step of data.steps) {
      const row = root.querySelector(`tr[data-step="${CSS.escape(step.name)}"]`);
      const panel = panels.get(step.name);
      if (!row || !panel) {
        window.location.reload();  // steps the page does not know yet: draw them afresh
        return;
      }
      setBadge(row.querySelector('[data-field="status"] .badge'), step.status);
      row.querySelector('[data-field="attempts"]').textContent = `${step.attempts} of ${step.max_attempts}`;
      row.querySelector('[data-field="duration"]').textContent = step.duration || "—";
      setBadge(panel.el.querySelector("[data-log-status]"), step.status);
      // Open the log of a step that runs, or that ran between two looks (a step of a second
      // or less starts and ends unseen), unless the user closed it.
      const changed = step.status !== panel.status;
      panel.status = step.status;
      const ran = step.status === "Running" || (changed && step.attempts > 0);
      if (ran && !panel.el.open && !panel.touched) {
        panel.auto = true;
        panel.el.open = true;
      }
    }
    await Promise.all([...panels.values()].filter((p) => p.el.open).map(pull));
    if (data.active) {
      setTimeout(tick, 1000);
      return;
    }
    root.dataset.active = "false";
    root.querySelectorAll("[data-hide-when-done]").forEach((el) => el.remove());
    const note = root.querySelector("[data-follow-note]");
    if (note) note.textContent = "";
  }

  panels.forEach((panel) => panel.el.open && pull(panel));
  if (root.dataset.active === "true") setTimeout(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-run]").forEach(followRun);
  document.querySelectorAll("[data-select-on-focus]").forEach((el) =>
    el.addEventListener("focus", () => el.select()),
  );
});

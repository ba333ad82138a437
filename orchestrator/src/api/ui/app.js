// The orchestrator's web UI: a saga list with filters and search, a saga page with its
// timeline, and an overview. Plain JavaScript over the /v1 API, no build step. It stays live by
// following the feed of every saga's events (GET /v1/events/stream): a page renders again soon
// after an event of what it shows commits, and every ten seconds for what changes with time
// alone (overdue flags). Elements carry ids and data-* attributes for the browser test.
"use strict";

const STATUSES = ["running", "compensating", "completed", "compensated", "stuck", "aborted"];
const POLL_MS = 10000;
// Events that come close together cause one render.
const SETTLE_MS = 300;
const app = document.getElementById("app");
let timer = null;
let settling = null;
// The list page's filters survive going to a saga and back.
const filters = { status: "", name: "", input: "", overdue: false, cursor: null, cursors: [] };
// A saga still running well past its deadline (or its start): flagged wherever it is shown.
const OVERDUE = `<span class="overdue" title="still running or compensating past its deadline plus the overdue margin">overdue</span>`;

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

async function api(path, options = {}) {
  const headers = Object.assign({ accept: "application/json" }, options.headers || {});
  const token = localStorage.getItem("sagaToken");
  if (token) headers.authorization = "Bearer " + token;
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  const body = await resp.json().catch(() => null);
  if (resp.status === 401) {
    const t = prompt("This orchestrator needs an API token (SAGA_API_TOKEN, or one made by saga api token):");
    if (t) { localStorage.setItem("sagaToken", t); return api(path, options); }
  }
  if (!resp.ok) throw new Error((body && body.detail) || resp.statusText);
  return body;
}

function when(iso) { return iso ? iso.replace("T", " ").replace("Z", "") : "-"; }

function route() {
  clearInterval(timer);
  clearTimeout(settling);
  settling = null;
  const m = location.hash.match(/^#\/saga\/([0-9a-f-]+)(?:\/at\/(\d+))?/);
  const render = m ? (first) => sagaPage(m[1], first, m[2] ? Number(m[2]) : null) : listPage;
  render(true);
  follow(render, m ? m[1] : null);
  timer = setInterval(() => render(false), POLL_MS);
}

// Follows the feed from its head: each event of saga `only` (of any saga, without one) makes
// `render` run again, once for events that come together. EventSource cannot send the API
// token, so the stream is read with fetch; a dropped stream is read again from the last
// position seen, so no event is missed.
let following = null;
async function follow(render, only) {
  if (following) following.abort();
  const mine = new AbortController();
  following = mine;
  let after;
  try { after = (await api("/v1/events?limit=1")).head; } catch (e) { return; }
  while (!mine.signal.aborted) {
    try {
      const headers = { accept: "text/event-stream" };
      const token = localStorage.getItem("sagaToken");
      if (token) headers.authorization = "Bearer " + token;
      const resp = await fetch("/v1/events/stream?after=" + after, { headers, signal: mine.signal });
      if (!resp.ok || !resp.body) throw new Error(resp.statusText);
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let text = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        let end;
        while ((end = text.indexOf("\n\n")) >= 0) {
          const frame = text.slice(0, end);
          text = text.slice(end + 2);
          const id = /^id: (\d+)$/m.exec(frame);
          const data = /^data: (.*)$/m.exec(frame);
          if (!id || !data) continue;
          after = Number(id[1]);
          document.body.dataset.feedPosition = String(after);
          const event = JSON.parse(data[1]);
          if (!only || event.saga_id === only) settle(render);
        }
      }
    } catch (e) {
      if (mine.signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function settle(render) {
  if (settling) return;
  settling = setTimeout(() => { settling = null; render(false); }, SETTLE_MS);
}
window.addEventListener("hashchange", route);

function fail(e) {
  app.innerHTML = `<p class="problem" id="problem">${esc(e.message)}</p>` + app.innerHTML;
}

// ---- list and overview -------------------------------------------------------------------

async function listPage(first) {
  const params = new URLSearchParams({ limit: "50" });
  if (filters.status) params.set("status", filters.status);
  if (filters.name) params.set("name", filters.name);
  const field = filters.input.split("=");
  if (field.length === 2 && field[0]) params.set("input." + field[0].trim(), field[1].trim());
  if (filters.overdue) params.set("overdue", "true");
  if (filters.cursor) params.set("cursor", filters.cursor);
  let page, overview;
  try {
    [page, overview] = await Promise.all([api("/v1/sagas?" + params), api("/v1/overview")]);
  } catch (e) { if (first) app.innerHTML = ""; fail(e); return; }
  if (first || !document.getElementById("saga-list")) app.innerHTML = listShell();
  document.getElementById("overview").innerHTML = overviewHtml(overview);
  document.getElementById("saga-list").innerHTML = page.sagas.map((s) => `
    <tr data-saga-id="${esc(s.saga_id)}" data-status="${esc(s.status)}">
      <td class="mono"><a href="#/saga/${esc(s.saga_id)}">${esc(s.saga_id)}</a></td>
      <td>${esc(s.name)} v${esc(s.definition_version)}</td>
      <td><span class="status ${esc(s.status)}">${esc(s.status)}</span>${s.overdue ? " " + OVERDUE : ""}</td>
      <td class="mono">${esc(when(s.created_at))}</td>
      <td class="mono">${esc(when(s.updated_at))}</td>
    </tr>`).join("") || `<tr><td colspan="5" class="muted">No saga matches.</td></tr>`;
  const next = document.getElementById("next-page");
  next.disabled = !page.next_cursor;
  next.onclick = () => { filters.cursors.push(filters.cursor); filters.cursor = page.next_cursor; listPage(true); };
  const prev = document.getElementById("prev-page");
  prev.disabled = filters.cursors.length === 0;
  prev.onclick = () => { filters.cursor = filters.cursors.pop() || null; listPage(true); };
}

function listShell() {
  const buttons = ["", ...STATUSES].map((s) =>
    `<button data-status-filter="${s}" class="${filters.status === s ? "active" : ""}">${s || "all"}</button>`).join("")
    + `<button id="overdue-filter" class="${filters.overdue ? "active" : ""}">overdue only</button>`;
  setTimeout(bindFilters);
  return `
    <section id="overview"></section>
    <div class="filters">${buttons}
      <input id="search-name" placeholder="saga name" value="${esc(filters.name)}" size="14">
      <input id="search-input" placeholder="input field=value, e.g. customer_id=alice" value="${esc(filters.input)}" size="34">
      <button id="search">Search</button>
    </div>
    <table><thead><tr><th>saga</th><th>definition</th><th>status</th><th>created</th><th>updated</th></tr></thead>
      <tbody id="saga-list"></tbody></table>
    <div class="filters"><button id="prev-page">← newer</button><button id="next-page">older →</button></div>`;
}

function bindFilters() {
  const reset = () => { filters.cursor = null; filters.cursors = []; listPage(true); };
  document.querySelectorAll("[data-status-filter]").forEach((b) => {
    b.onclick = () => { filters.status = b.dataset.statusFilter; reset(); };
  });
  document.getElementById("overdue-filter").onclick = () => { filters.overdue = !filters.overdue; reset(); };
  const search = () => {
    filters.name = document.getElementById("search-name").value.trim();
    filters.input = document.getElementById("search-input").value.trim();
    reset();
  };
  document.getElementById("search").onclick = search;
  ["search-name", "search-input"].forEach((id) =>
    document.getElementById(id).addEventListener("keydown", (e) => { if (e.key === "Enter") search(); }));
}

function overviewHtml(o) {
  const cards = STATUSES.map((s) =>
    `<div class="card" data-count="${s}"><div class="n status ${s}">${o.counts[s] || 0}</div><div class="muted">${s}</div></div>`).join("");
  const w = 240, h = 44, max = Math.max(1, ...o.started);
  const pts = o.started.map((n, i) => `${(i * w / (o.started.length - 1)).toFixed(1)},${(h - 4 - n * (h - 8) / max).toFixed(1)}`).join(" ");
  return `<div class="cards"><div class="card"><div class="n" id="total">${o.total}</div><div class="muted">sagas</div></div>${cards}
    <div class="card"><svg id="sparkline" width="${w}" height="${h}"><polyline points="${pts}" fill="none" stroke="var(--forward)" stroke-width="2"/></svg>
    <div class="muted">started per minute, last ${o.started.length} min (max ${max})</div></div></div>`;
}

// ---- one saga ----------------------------------------------------------------------------

// One saga, now or, with `asOf`, as it was after its event number `asOf` (time travel: the
// API replays that prefix of the log).
async function sagaPage(id, first, asOf) {
  let saga, events;
  const at = asOf ? `?as_of_sequence=${asOf}` : "";
  try {
    [saga, events] = await Promise.all([api(`/v1/sagas/${id}${at}`), api(`/v1/sagas/${id}/events`)]);
  } catch (e) { app.innerHTML = ""; fail(e); return; }
  const total = events.length;
  if (asOf) events = events.filter((e) => e.sequence <= asOf);
  const current = document.getElementById("saga");
  if (!first && current && current.dataset.version === String(saga.version)
      && current.dataset.total === String(total)) return;
  const travel = asOf
    ? `<p id="as-of" class="problem">Time travel: the saga as of event ${asOf} of ${total} · <a href="#/saga/${esc(saga.saga_id)}">back to now</a></p>`
    : `<p class="muted">Click an event's number to see the saga as it was then.</p>`;
  // A stuck saga is retried, skipped or aborted; a running one may be cancelled (undone),
  // which the server refuses once its pivot is sent.
  const offered = saga.status === "stuck" ? ["retry", "skip", "abort"]
    : saga.status === "running" ? ["cancel"] : [];
  const actions = !asOf && offered.length
    ? `<div class="filters" id="operator">${offered.map((a) =>
        `<button data-action="${a}" class="${a === "abort" || a === "cancel" ? "danger" : ""}">${a}</button>`).join("")}</div>` : "";
  // An await step waiting for its signal: until when, and a form to send it.
  const waiting = asOf ? [] : saga.steps.filter((s) => s.status === "waiting" && s.signal);
  const signals = waiting.map((s) => `<div class="problem" id="waiting-${esc(s.name)}">Step ${esc(s.name)} waits for signal <b>${esc(s.signal)}</b> until ${esc(when(new Date(s.timeout_at).toISOString()))}
      <textarea rows="2" cols="50" id="payload-${esc(s.signal)}" aria-label="payload of ${esc(s.signal)} (JSON)">{}</textarea>
      <button data-signal="${esc(s.signal)}">send ${esc(s.signal)}</button></div>`).join("");
  const left = saga.effects_left
    ? `<p class="problem" id="effects-left">Left applied by the abort: ${saga.effects_left.length ? esc(saga.effects_left.join(", ")) : "nothing"}</p>` : "";
  app.innerHTML = `
    <div id="saga" data-saga-id="${esc(saga.saga_id)}" data-status="${esc(saga.status)}" data-version="${saga.version}" data-total="${total}">
      <p><a href="#/">← all sagas</a></p>
      <h1>${esc(saga.name)} v${esc(saga.definition_version)} <span class="status ${esc(saga.status)}" id="saga-status">${esc(saga.status)}</span>${saga.overdue ? " " + OVERDUE : ""}</h1>
      ${saga.deadline_at ? `<p class="muted" id="deadline">deadline ${esc(when(saga.deadline_at))}</p>` : ""}
      <p class="mono">${esc(saga.saga_id)} · created ${esc(when(saga.created_at))} · updated ${esc(when(saga.updated_at))}</p>
      ${saga.reason ? `<p class="problem" id="reason">${esc(saga.reason)}</p>` : ""}
      ${left}
      ${signals}
      ${travel}
      ${actions}
      <h2>Timeline</h2>
      <div class="legend muted"><span><i class="swatch" style="background:var(--forward)"></i>step</span>
        <span><i class="swatch" style="background:var(--compensation)"></i>compensation</span>
        <span><i class="swatch" style="background:var(--bad)"></i>rejected</span>
        <span>◆ retry scheduled</span><span style="color:var(--bad)">✕ timed out</span><span style="color:#8a4fd6">● late reply</span></div>
      ${timeline(events)}
      <div class="grid">
        <div><h2>Input</h2><pre id="input">${esc(JSON.stringify(saga.input, null, 2))}</pre></div>
        <div><h2>Steps</h2><table id="steps"><thead><tr><th>step</th><th>status</th><th>attempt</th><th>compensation</th></tr></thead><tbody>
          ${saga.steps.map((s) => `<tr data-step="${esc(s.name)}"><td>${esc(s.name)}</td><td class="status ${esc(s.status)}">${esc(s.status)}</td><td>${s.attempt}</td><td>${s.compensation_attempt || "-"}</td></tr>`).join("")}
        </tbody></table></div>
      </div>
      <h2>Event log</h2>
      <table id="events"><thead><tr><th>#</th><th>event</th><th>step</th><th>occurred</th><th>recorded</th><th>data</th></tr></thead><tbody>
        ${events.map((e) => `<tr data-sequence="${e.sequence}" data-type="${esc(e.type)}"><td><a href="#/saga/${esc(saga.saga_id)}/at/${e.sequence}" title="the saga as of this event">${e.sequence}</a></td><td>${esc(e.type)}</td><td>${esc(e.data.step || "")}</td>
          <td class="mono">${esc(when(e.occurred_at))}</td><td class="mono">${esc(when(e.recorded_at))}</td>
          <td class="mono">${esc(brief(e.data))}</td></tr>`).join("")}
      </tbody></table>
    </div>`;
  document.querySelectorAll("[data-signal]").forEach((b) => {
    b.onclick = async () => {
      const text = document.getElementById(`payload-${b.dataset.signal}`).value;
      let payload;
      try { payload = JSON.parse(text); } catch (e) { fail(new Error(`not JSON: ${e.message}`)); return; }
      try {
        await api(`/v1/sagas/${id}/signals/${b.dataset.signal}`, {
          method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify(payload),
        });
        sagaPage(id, true);
      } catch (e) { fail(e); }
    };
  });
  document.querySelectorAll("[data-action]").forEach((b) => {
    b.onclick = async () => {
      const reason = prompt(`Why ${b.dataset.action} this saga? (recorded in its history)`);
      if (!reason) return;
      try {
        await api(`/v1/sagas/${id}/${b.dataset.action}`, {
          method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ by: "web", reason }),
        });
        sagaPage(id, true);
      } catch (e) { fail(e); }
    };
  });
}

function brief(data) {
  const d = Object.assign({}, data);
  delete d.step; delete d.payload; delete d.input;
  const s = JSON.stringify(d);
  return s === "{}" ? "" : s.length > 120 ? s.slice(0, 117) + "…" : s;
}

// Bars from the event log: a forward bar per step attempt (StepStarted → its outcome), a
// compensation bar per compensation attempt (CompensationStarted → StepCompensated), and
// markers for retries, timeouts and late replies. Rows follow the order bars started.
function bars(events) {
  const t = (e) => Date.parse(e.occurred_at);
  const rows = [], open = new Map(), marks = [];
  const key = (kind, step, attempt) => `${kind}/${step}/${attempt}`;
  for (const e of events) {
    const d = e.data;
    switch (e.type) {
      case "StepStarted":
      case "CompensationStarted": {
        const kind = e.type === "StepStarted" ? "forward" : "compensation";
        const bar = { kind, step: d.step, attempt: d.attempt, start: t(e), end: null, outcome: "open", command: d.command };
        rows.push(bar); open.set(key(kind, d.step, d.attempt), bar);
        break;
      }
      case "StepSucceeded": close("forward", d, e, "succeeded"); break;
      case "StepRejected": close("forward", d, e, "rejected"); break;
      case "StepCompensated": close("compensation", d, e, "compensated"); break;
      case "CommandTimedOut":
        close(d.kind, d, e, "timed-out"); marks.push({ kind: "timeout", at: t(e), step: d.step, kindOf: d.kind, attempt: d.attempt }); break;
      case "CommandFailed": close(d.kind, d, e, "failed"); break;
      case "RetryScheduled": marks.push({ kind: "retry", at: t(e), step: d.step, kindOf: d.kind, attempt: d.attempt - 1 }); break;
      case "LateReplyRecorded": marks.push({ kind: "late", at: t(e), step: d.step, kindOf: d.kind, attempt: d.attempt }); break;
    }
  }
  function close(kind, d, e, outcome) {
    const bar = open.get(key(kind, d.step, d.attempt));
    if (bar && bar.end === null) { bar.end = t(e); bar.outcome = outcome; }
  }
  return { rows, marks };
}

function timeline(events) {
  const { rows, marks } = bars(events);
  if (rows.length === 0) return `<p class="muted" id="timeline">No step started yet.</p>`;
  const times = events.map((e) => Date.parse(e.occurred_at));
  const t0 = Math.min(...times), last = Math.max(...times);
  const t1 = Math.max(last, ...rows.map((r) => r.end || last)) + 1;
  const label = 190, width = 900, rowH = 24, top = 22, plot = width - label - 20;
  const x = (ms) => label + ((ms - t0) / (t1 - t0)) * plot;
  const rowOf = (kind, step, attempt) => rows.findIndex((r) => r.kind === kind && r.step === step && r.attempt === attempt);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const ms = t0 + f * (t1 - t0), px = label + f * plot;
    return `<line x1="${px}" x2="${px}" y1="${top - 4}" y2="${top + rows.length * rowH}" stroke="var(--line)"/>
      <text x="${px}" y="12" text-anchor="middle">+${((ms - t0) / 1000).toFixed(2)}s</text>`;
  }).join("");
  const bar = (r, i) => {
    const y = top + i * rowH, x1 = x(r.start), x2 = Math.max(x(r.end ?? last) , x1 + 3);
    const cls = ["bar", r.kind, r.outcome === "rejected" ? "rejected" : "", r.outcome === "timed-out" ? "timed-out" : "", r.end === null ? "open" : ""].join(" ");
    const name = (r.kind === "compensation" ? "↶ " : "") + r.step + (r.attempt > 1 ? ` #${r.attempt}` : "");
    return `<g class="row" data-row="${i}">
      <text x="4" y="${y + 15}">${esc(name)}</text>
      <rect class="${cls}" data-kind="${r.kind}" data-step="${esc(r.step)}" data-attempt="${r.attempt}" data-outcome="${r.outcome}"
        data-start="${r.start}" x="${x1.toFixed(1)}" y="${y + 4}" width="${(x2 - x1).toFixed(1)}" height="${rowH - 8}" rx="3">
        <title>${esc(r.command)} ${r.kind} attempt ${r.attempt}: ${r.outcome}${r.end ? `, ${r.end - r.start} ms` : ""}</title></rect></g>`;
  };
  const mark = (m) => {
    const i = Math.max(0, rowOf(m.kindOf === "compensation" ? "compensation" : "forward", m.step, m.attempt));
    const cx = x(m.at), cy = top + i * rowH + rowH / 2;
    const shape = m.kind === "retry" ? `<path d="M${cx} ${cy - 6} L${cx + 6} ${cy} L${cx} ${cy + 6} L${cx - 6} ${cy} Z"`
      : m.kind === "timeout" ? `<path d="M${cx - 5} ${cy - 5} L${cx + 5} ${cy + 5} M${cx + 5} ${cy - 5} L${cx - 5} ${cy + 5}" stroke="var(--bad)" stroke-width="2"`
      : `<circle cx="${cx}" cy="${cy}" r="5"`;
    return `${shape} class="marker ${m.kind}" data-marker="${m.kind}" data-step="${esc(m.step)}"><title>${m.kind} ${esc(m.step)}</title>${shape.startsWith("<circle") ? "</circle>" : "</path>"}`;
  };
  const height = top + rows.length * rowH + 6;
  return `<svg id="timeline" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">
    ${ticks}${rows.map(bar).join("")}${marks.map(mark).join("")}</svg>`;
}

route();

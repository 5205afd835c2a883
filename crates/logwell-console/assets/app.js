// logwell console: log groups, streams and Live Tail. Plain JavaScript, no build step: the pages
// call the CloudWatch Logs API on this server (POST /, X-Amz-Target) and follow a live tail
// through GET /live-tail (Server-Sent Events read with fetch, so errors keep their message).

import { canSign, credentials, sign, signIn, signOut } from "./sigv4.js";

const view = document.getElementById("view");

// ------------------------------------------------------------------ API

// An AWS error answer (`__type`, `message`) as an Error.
async function failure(r) {
  const data = await r.json().catch(() => ({}));
  return new Error(`${data.__type || r.status}: ${data.message || ""}`);
}

// Errors that mean "sign in (again)".
const AUTH_ERRORS = ["MissingAuthenticationTokenException", "UnrecognizedClientException",
  "InvalidSignatureException", "ExpiredTokenException", "IncompleteSignatureException"];

// A fetch of this server, signed when the tab has credentials; an authentication error sends
// the page to the sign-in form with AWS's message.
async function call(method, path, query, headers, body, signal) {
  const c = credentials();
  if (c && canSign()) headers = await sign(method, path, query, headers, body, c);
  const url = query && [...query].length ? `${path}?${query}` : path;
  const r = await fetch(url, { method, headers, body: body || undefined, signal });
  if (!r.ok) {
    const e = await failure(r);
    if (AUTH_ERRORS.some((t) => e.message.startsWith(t))) {
      sessionStorage.setItem("logwell-signin-reason", e.message);
      location.hash = "#/signin";
    }
    throw e;
  }
  return r;
}

async function api(operation, body) {
  const r = await call("POST", "/", null,
    { "X-Amz-Target": `Logs_20140328.${operation}`, "Content-Type": "application/x-amz-json-1.1" },
    JSON.stringify(body || {}));
  return r.json();
}

async function pages(operation, body, key) {
  const out = [];
  let token;
  do {
    const page = await api(operation, { ...body, ...(token ? { nextToken: token } : {}) });
    out.push(...(page[key] || []));
    token = page.nextToken;
  } while (token);
  return out;
}

// ------------------------------------------------------------------ helpers

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const time = (ms) => (ms == null ? "" : new Date(ms).toISOString().replace("T", " ").replace("Z", ""));
const bytes = (n) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB`
  : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n || 0} B`);

function showError(e) {
  view.append(el("div", { class: "error-box", id: "error" }, e.message || String(e)));
}

// The level a line is coloured by: the first level word (letters between non-letters) in its first
// 200 characters, as `logwell tail` colours it.
const LEVELS = { ERROR: "error", ERR: "error", FATAL: "error", CRITICAL: "error", PANIC: "error", SEVERE: "error",
  WARN: "warn", WARNING: "warn", DEBUG: "debug", TRACE: "debug" };
function level(message) {
  for (const word of message.slice(0, 200).toUpperCase().split(/[^A-Z]+/)) {
    if (LEVELS[word]) return LEVELS[word];
  }
  return "";
}

// ------------------------------------------------------------------ pages

async function groupsPage() {
  view.replaceChildren(el("h1", {}, "Log groups"));
  try {
    const groups = await pages("DescribeLogGroups", {}, "logGroups");
    const rows = groups.map((g) => el("tr", { class: "group" },
      el("td", {}, el("a", { href: `#/groups/${encodeURIComponent(g.logGroupName)}` }, g.logGroupName)),
      el("td", {}, g.retentionInDays ? `${g.retentionInDays} days` : "Never expire"),
      el("td", {}, bytes(g.storedBytes)),
      el("td", {}, time(g.creationTime)),
      el("td", {}, el("a", { href: `#/tail?groups=${encodeURIComponent(g.logGroupName)}` }, "Live tail"))));
    view.append(groups.length
      ? el("table", { id: "groups" }, el("tr", {}, ...["Name", "Retention", "Stored", "Created", ""].map((h) => el("th", {}, h))), ...rows)
      : el("p", {}, "No log groups yet."));
  } catch (e) { showError(e); }
}

async function streamsPage(group) {
  view.replaceChildren(el("h1", {}, group),
    el("p", {}, el("a", { id: "tail-this", href: `#/tail?groups=${encodeURIComponent(group)}` }, "Live tail this group")));
  try {
    const streams = await pages("DescribeLogStreams", { logGroupName: group, orderBy: "LastEventTime", descending: true }, "logStreams");
    view.append(el("table", { id: "streams" },
      el("tr", {}, ...["Stream", "First event", "Last event", "Last ingestion"].map((h) => el("th", {}, h))),
      ...streams.map((s) => el("tr", { class: "stream" }, el("td", {}, s.logStreamName), el("td", {}, time(s.firstEventTimestamp)),
        el("td", {}, time(s.lastEventTimestamp)), el("td", {}, time(s.lastIngestionTime))))));
  } catch (e) { showError(e); }
}

// ------------------------------------------------------------------ live tail

const MAX_ROWS = 5000; // rows kept on the page (scrollback), oldest removed first
const MAX_PAUSED = 10000; // events kept while paused, oldest dropped beyond

let tail = null; // the running tail, if any

function tailPage(params) {
  stopTail();
  const groups = el("input", { id: "tail-groups", placeholder: "/app/web, /app/db", value: params.get("groups") || "" });
  const stream = el("input", { id: "tail-stream", placeholder: "stream name prefix", value: params.get("stream") || "" });
  const filter = el("input", { id: "tail-filter", placeholder: 'ERROR, %regex%, { $.level = "error" }', value: params.get("filter") || "" });
  const start = el("button", { id: "tail-start" }, "Start");
  const pause = el("button", { id: "tail-pause", disabled: "" }, "Pause");
  const clear = el("button", { id: "tail-clear" }, "Clear");
  const search = el("input", { id: "tail-search", placeholder: "highlight text", type: "search" });
  const rows = el("div", { id: "rows" });
  const state = el("span", { id: "tail-state" }, "stopped");
  const eps = el("span", { id: "eps" }, "0 events/s");
  const shown = el("span", { id: "shown" }, "0 shown");
  const matches = el("span", { id: "match-count" });
  const pausedCount = el("span", { id: "paused-count", hidden: "" });
  const sampled = el("span", { id: "sampled", hidden: "" }, "Sampled: more events matched than a session shows (500 a second); some are not shown.");
  view.replaceChildren(el("h1", {}, "Live tail"),
    el("div", { class: "controls" },
      el("label", {}, "Log groups (comma-separated)", groups), el("label", {}, "Stream prefix", stream),
      el("label", {}, "Filter pattern", filter), start, pause, clear, el("label", {}, "Search", search)),
    el("div", { class: "status" }, state, eps, shown, matches, pausedCount, sampled),
    rows);

  const t = {
    rows, pending: [], paused: false, queued: [], dropped: 0, received: 0, search: "", abort: null,
    stick: true, frame: 0, sampledUntil: 0,
  };
  tail = t;
  rows.addEventListener("scroll", () => {
    // Scrolled up to read: stop following the bottom until scrolled back down.
    t.stick = rows.scrollHeight - rows.scrollTop - rows.clientHeight < 30;
  });
  const tick = setInterval(() => {
    eps.textContent = `${t.received} events/s`;
    t.received = 0;
    sampled.hidden = Date.now() > t.sampledUntil;
  }, 1000);
  t.stopTicking = () => clearInterval(tick);

  function render() {
    t.frame = 0;
    if (t.paused || !t.pending.length) return;
    const fragment = document.createDocumentFragment();
    for (const e of t.pending.splice(0)) fragment.append(row(e, t.search));
    rows.append(fragment);
    while (rows.childElementCount > MAX_ROWS) rows.firstElementChild.remove();
    shown.textContent = `${rows.childElementCount} shown`;
    if (t.search) countMatches();
    if (t.stick) rows.scrollTop = rows.scrollHeight;
  }
  t.add = (events) => {
    t.received += events.length;
    if (t.paused) {
      t.queued.push(...events);
      if (t.queued.length > MAX_PAUSED) t.dropped += t.queued.splice(0, t.queued.length - MAX_PAUSED).length;
      pausedCount.hidden = false;
      pausedCount.textContent = `${t.queued.length} new while paused` + (t.dropped ? ` (${t.dropped} oldest dropped)` : "");
      return;
    }
    t.pending.push(...events);
    if (!t.frame) t.frame = requestAnimationFrame(render);
  };
  function countMatches() {
    matches.textContent = t.search ? `${rows.querySelectorAll("mark").length} matches` : "";
  }

  pause.addEventListener("click", () => {
    t.paused = !t.paused;
    pause.textContent = t.paused ? "Resume" : "Pause";
    state.textContent = t.paused ? "paused" : "live";
    if (!t.paused) {
      // Everything that arrived while paused, in order.
      t.pending.push(...t.queued.splice(0));
      t.dropped = 0;
      pausedCount.hidden = true;
      render();
    }
  });
  clear.addEventListener("click", () => { rows.replaceChildren(); shown.textContent = "0 shown"; countMatches(); });
  let debounce;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      t.search = search.value;
      for (const r of rows.children) highlight(r.querySelector(".message"), r.dataset.message, t.search);
      countMatches();
    }, 120);
  });
  start.addEventListener("click", () => {
    if (t.abort) { stopTail(false); start.textContent = "Start"; pause.setAttribute("disabled", ""); return; }
    const query = new URLSearchParams();
    for (const g of groups.value.split(",").map((s) => s.trim()).filter(Boolean)) query.append("group", g);
    if (stream.value.trim()) query.set("stream", stream.value.trim());
    if (filter.value.trim()) query.set("filter", filter.value.trim());
    history.replaceState(null, "", `#/tail?groups=${encodeURIComponent(groups.value)}` +
      (stream.value ? `&stream=${encodeURIComponent(stream.value)}` : "") + (filter.value ? `&filter=${encodeURIComponent(filter.value)}` : ""));
    view.querySelector("#error")?.remove();
    start.textContent = "Stop";
    pause.removeAttribute("disabled");
    follow(t, query, state, () => { start.textContent = "Start"; pause.setAttribute("disabled", ""); });
  });
  if (params.get("groups")) start.click();
}

function row(e, search) {
  const multi = e.logGroupIdentifier && tail && tail.multiGroup;
  const message = el("span", { class: "message" });
  highlight(message, e.message, search);
  const r = el("div", { class: `row ${level(e.message) ? "level-" + level(e.message) : ""}` },
    el("span", { class: "time" }, time(e.timestamp)),
    el("span", { class: "source" }, (multi ? e.logGroupIdentifier.replace(/^\d+:/, "") + " " : "") + e.logStreamName),
    message);
  r.dataset.message = e.message;
  return r;
}

// Shows `text` in `node`, with every case-insensitive occurrence of `search` marked.
function highlight(node, text, search) {
  if (!search) { node.textContent = text; return; }
  node.replaceChildren();
  const pattern = new RegExp(search.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gi");
  let at = 0;
  for (const m of text.matchAll(pattern)) {
    node.append(text.slice(at, m.index), el("mark", {}, m[0]));
    at = m.index + m[0].length;
  }
  node.append(text.slice(at));
}

// Reads the live tail's Server-Sent Events until stopped or ended.
async function follow(t, query, state, ended) {
  const abort = new AbortController();
  t.abort = abort;
  t.multiGroup = query.getAll("group").length > 1;
  try {
    const r = await call("GET", "/live-tail", query, {}, "", abort.signal);
    state.textContent = t.paused ? "paused" : "live";
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        // Lines end only at LF here: JSON text may hold U+2028/U+2029, which a regex's `$` takes
        // for line ends.
        const lines = block.split("\n");
        const name = lines.find((l) => l.startsWith("event: "))?.slice(7);
        const data = JSON.parse(lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n") || "{}");
        if (name === "sessionUpdate") {
          if (data.sessionMetadata?.sampled) t.sampledUntil = Date.now() + 5000;
          if (data.sessionResults.length) t.add(data.sessionResults);
        } else if (name !== "sessionStart") {
          throw new Error(`${name}: ${data.message || ""}`);
        }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") showError(e);
  } finally {
    if (t.abort === abort) t.abort = null;
    state.textContent = "stopped";
    ended();
  }
}

function stopTail(leaving = true) {
  if (!tail) return;
  tail.abort?.abort();
  tail.abort = null;
  if (leaving) { tail.stopTicking?.(); tail = null; }
}

// ------------------------------------------------------------------ sign-in

// A server with credentials wants every request signed: the console signs with keys given here
// (kept in this tab only). Without credentials on the server, no sign-in is needed.
function signInPage() {
  const reason = sessionStorage.getItem("logwell-signin-reason");
  sessionStorage.removeItem("logwell-signin-reason");
  const c = credentials() || {};
  const key = el("input", { id: "signin-key", placeholder: "AKIA...", value: c.accessKeyId || "", autocomplete: "username" });
  const secret = el("input", { id: "signin-secret", type: "password", autocomplete: "current-password" });
  const token = el("input", { id: "signin-token", placeholder: "only for temporary credentials" });
  const region = el("input", { id: "signin-region", value: c.region || "us-east-1" });
  const form = el("form", { id: "signin", onsubmit: (ev) => {
    ev.preventDefault();
    signIn({ accessKeyId: key.value.trim(), secretAccessKey: secret.value, sessionToken: token.value.trim() || null,
      region: region.value.trim() || "us-east-1" });
    showUser();
    location.hash = "#/groups";
  } },
  el("label", {}, "Access key id ", key), el("label", {}, "Secret access key ", secret),
  el("label", {}, "Session token ", token), el("label", {}, "Region ", region),
  el("button", { id: "signin-submit", type: "submit" }, "Sign in"));
  view.replaceChildren(el("h1", {}, "Sign in"), form);
  if (!canSign()) view.append(el("div", { class: "error-box" }, "This browser cannot sign requests here: open the console over HTTPS or on localhost."));
  if (reason) view.append(el("div", { class: "error-box", id: "error" }, reason));
}

// The header's sign-in state.
function showUser() {
  const c = credentials();
  const slot = document.getElementById("user");
  slot.replaceChildren(c
    ? el("span", {}, el("span", { id: "signed-in-as" }, c.accessKeyId), " ",
      el("a", { href: "#/signin", id: "signout", onclick: () => { signOut(); showUser(); } }, "Sign out"))
    : el("a", { href: "#/signin", id: "signin-link" }, "Sign in"));
}

// ------------------------------------------------------------------ routing

function route() {
  const hash = location.hash || "#/groups";
  const [path, query] = hash.slice(1).split("?");
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", path.startsWith(`/${a.dataset.nav}`));
  if (path === "/tail") return tailPage(new URLSearchParams(query || ""));
  stopTail();
  if (path === "/signin") return signInPage();
  const group = /^\/groups\/(.+)$/.exec(path);
  if (group) return streamsPage(decodeURIComponent(group[1]));
  return groupsPage();
}

window.addEventListener("hashchange", route);
showUser();
route();

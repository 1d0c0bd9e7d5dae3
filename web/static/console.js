// Vigil console: live views only while visible, camera status, the alert feed, events, review.
"use strict";
const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
const when = (ms) => new Date(ms).toLocaleString();

async function api(path, options = {}) {
  const reply = await fetch(path, { credentials: "same-origin", ...options });
  if (reply.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("logged out"); }
  if (!reply.ok) throw new Error((await reply.json().catch(() => ({}))).detail || reply.statusText);
  return reply.json();
}

function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() }, body: JSON.stringify(body) });
}

// -- live views: a stream is open only while its image is on screen and the tab is visible --------
function liveViews() {
  const images = [...document.querySelectorAll("img.live")];
  if (!images.length) return;
  const visible = new Set();
  const sync = () => images.forEach((img) => {
    const on = visible.has(img) && document.visibilityState === "visible";
    if (on && !img.getAttribute("src")) img.src = img.dataset.src;
    if (!on && img.getAttribute("src")) img.removeAttribute("src");  // closes the connection
  });
  const observer = new IntersectionObserver((entries) => {
    entries.forEach((e) => (e.isIntersecting ? visible.add(e.target) : visible.delete(e.target)));
    sync();
  });
  images.forEach((img) => observer.observe(img));
  document.addEventListener("visibilitychange", sync);
}

async function cameraStatus() {
  const figures = [...document.querySelectorAll("figure.camera")];
  if (!figures.length) return;
  try {
    const cameras = Object.fromEntries((await api("/api/cameras")).map((c) => [c.camera, c]));
    figures.forEach((figure) => {
      const c = cameras[figure.dataset.camera], status = figure.querySelector(".status");
      figure.classList.toggle("down", !c || !c.up);
      status.textContent = !c ? "not registered" : c.up ? `up · ${c.fps.toFixed(1)} fps · ${c.width}×${c.height}`
        : `down (${c.state})${c.last_error ? ": " + c.last_error : ""}`;
    });
  } catch (error) { console.warn(error); }
  setTimeout(cameraStatus, 2000);
}

// -- alerts: the live feed and the filtered list ---------------------------------------------------
function feedItem(event) {
  const li = el("li", undefined, `alert ${event.kind}`);
  li.dataset.event = event.event_id;
  const text = `${when(event.ts_ns / 1e6)} ${event.camera}: ${event.label} ${event.kind} (score ${event.score.toFixed(2)}, rule ${event.rule})`;
  if (event.kind === "started") { const a = el("a", text); a.href = `/events/${event.event_id}`; li.append(a); }
  else li.append(text);
  return li;
}

function liveFeed() {
  const feed = document.getElementById("feed");
  if (!feed) return;
  const source = new EventSource("/api/alerts/live");
  source.addEventListener("alert", (message) => {
    feed.prepend(feedItem(JSON.parse(message.data)));
    while (feed.children.length > 200) feed.lastChild.remove();
  });
}

function eventList() {
  const form = document.getElementById("filters");
  if (!form) return;
  const body = document.querySelector("#events tbody"), more = document.getElementById("more");
  let cursor = null;
  const load = async (append) => {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (!value) continue;
      params.set(name, name === "since" || name === "until" ? new Date(value).toISOString() : value);
    }
    if (append && cursor) params.set("before", cursor);
    const page = await api("/api/events?" + params);
    if (!append) body.replaceChildren();
    page.events.forEach((e) => {
      const row = el("tr"), thumb = el("img");
      thumb.src = e.snapshot_url; thumb.loading = "lazy"; thumb.className = "thumb"; thumb.alt = "";
      const link = el("a", when(e.started_ms)); link.href = `/events/${e.event_id}`;
      [thumb, link, e.camera, e.label, e.score.toFixed(2), e.reviewed ? "yes" : "no"].forEach((v) => {
        const cell = el("td"); cell.append(v); row.append(cell);
      });
      body.append(row);
    });
    cursor = page.next_cursor;
    more.hidden = !cursor;
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); load(false).catch(alert); });
  more.addEventListener("click", () => load(true).catch(alert));
  load(false).catch(console.warn);
}

// -- one event: facts, snapshot, clip (seekable), review -----------------------------------------
async function eventPage() {
  const article = document.getElementById("event");
  if (!article) return;
  const id = article.dataset.event, state = document.getElementById("review-state");
  const button = document.getElementById("review"), note = document.getElementById("note");
  const show = (e) => {
    const facts = document.getElementById("facts");
    facts.replaceChildren();
    const rows = { Camera: e.camera, Label: e.label, Score: e.score.toFixed(2), Rule: e.rule, Severity: e.severity,
      Track: e.track_id ?? "–", Started: when(e.started_ms), Ended: e.ended_ms ? when(e.ended_ms) : "ongoing",
      Box: e.box.map((v) => v.toFixed(0)).join(", ") + ` (in ${e.frame_width}×${e.frame_height})` };
    Object.entries(rows).forEach(([k, v]) => { facts.append(el("dt", k), el("dd", String(v))); });
    state.textContent = e.reviewed ? "reviewed" : "not reviewed";
    button.textContent = e.reviewed ? "Mark not reviewed" : "Mark reviewed";
    button.dataset.reviewed = e.reviewed;
    note.value = e.note || "";
  };
  const e = await api(`/api/events/${id}`);
  show(e);
  document.getElementById("snapshot").src = e.snapshot_url;
  const clip = document.getElementById("clip"), clipState = document.getElementById("clip-state");
  if (e.clip_url) {
    clip.addEventListener("loadedmetadata", () => { if (e.clip_offset_s) clip.currentTime = Math.max(0, e.clip_offset_s - 1); }, { once: true });
    clip.src = e.clip_url;
  } else clipState.textContent = `Clip: ${e.clip_state}${e.clip_error ? " (" + e.clip_error + ")" : ""}`;
  button.addEventListener("click", async () => {
    show(await post(`/api/events/${id}/review`, { reviewed: button.dataset.reviewed !== "true", note: note.value }));
  });
}

function logout() {
  const form = document.getElementById("logout");
  if (!form) return;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" });
    location.href = "/login";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  logout(); liveViews(); cameraStatus(); liveFeed(); eventList(); eventPage().catch(console.warn);
});

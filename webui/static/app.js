// A little progressive enhancement; every page works without it.
"use strict";

// Status page: refresh the figures in place every 2 s (each <dd id="part-key"> from /api/status).
const statusCards = document.getElementById("status");
const STALE_TITLE = "the camera is offline: this is the last value known, not a current one";  // as status.html
if (statusCards) {
  const show = (id, text, stale) => {
    const el = document.getElementById(id);
    if (!el) return;
    el.textContent = text;
    if (stale === undefined) return;
    el.classList.toggle("stale", stale);
    if (stale) el.title = STALE_TITLE;
    else if (el.title === STALE_TITLE) el.removeAttribute("title");
  };
  setInterval(async () => {
    try {
      const response = await fetch(statusCards.dataset.url, { credentials: "same-origin" });
      if (response.status === 401) { location.reload(); return; }  // the login expired: show the login page
      const s = await response.json();
      // A part became well or unwell: draw the page again, with the reasons and the parts' new states.
      if (s.headline.text !== document.getElementById("state").textContent) { location.reload(); return; }
      show("open_events", s.open_events.map((e) => e.label).join(", ") || "none");
      for (const [name, part] of Object.entries(s.parts)) {
        show(`${name}-state`, part.state);
        const badge = document.getElementById(`${name}-state`);
        if (badge) badge.className = `badge state-${part.state}`;
        for (const [key, figure] of Object.entries(part.figures)) show(`${name}-${key}`, figure.text, figure.stale);
      }
    } catch (e) { /* the daemon restarting: try again next tick */ }
  }, 2000);
}

// Live view: load the next picture once the previous one is shown, at the server's pace. When a picture
// cannot be had (the camera is offline), ask the page why and say it instead of showing an old frame.
const live = document.getElementById("live");
if (live) {
  const offline = document.getElementById("live-offline");
  const stateUrl = document.getElementById("live-view").dataset.stateUrl;
  const interval = Number(live.dataset.intervalMs);
  const load = () => { live.src = live.dataset.src + "?t=" + Date.now(); };
  const explain = async () => {
    try {
      const response = await fetch(stateUrl, { credentials: "same-origin" });
      if (response.status === 401 || response.redirected) { location.reload(); return; }  // the login ended
      const state = await response.json();
      if (!state.online) {
        live.hidden = true;
        live.removeAttribute("src");
        document.getElementById("live-offline-text").textContent = state.text;
        document.getElementById("live-offline-reason").textContent = state.reason || "";
        offline.hidden = false;
      }
      setTimeout(state.online ? load : explain, state.online ? interval : 1000);
    } catch (e) { setTimeout(explain, 1000); }  // the daemon restarting: ask again
  };
  live.addEventListener("load", () => { live.hidden = false; offline.hidden = true; setTimeout(load, interval); });
  live.addEventListener("error", explain);
  if (!live.getAttribute("src")) explain();
}

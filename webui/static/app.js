// A little progressive enhancement; every page works without it.
"use strict";

// Status page: refresh the figures in place every 2 s (each <dd id="part-key"> from /api/status).
const statusCards = document.getElementById("status");
if (statusCards) {
  const show = (id, text, stale) => {
    const el = document.getElementById(id);
    if (!el) return;
    el.textContent = text;
    if (stale !== undefined) el.classList.toggle("stale", stale);
  };
  setInterval(async () => {
    try {
      const response = await fetch(statusCards.dataset.url, { credentials: "same-origin" });
      if (response.status === 401) { location.reload(); return; }  // the login expired: show the login page
      const s = await response.json();
      show("state", s.state);
      show("open_events", s.open_events.map((e) => e.type).join(", ") || "none");
      for (const [name, part] of Object.entries(s.parts)) {
        show(`${name}-state`, part.state);
        const badge = document.getElementById(`${name}-state`);
        if (badge) badge.className = `badge state-${part.state}`;
        for (const [key, figure] of Object.entries(part.figures)) show(`${name}-${key}`, figure.text, figure.stale);
      }
    } catch (e) { /* the daemon restarting: try again next tick */ }
  }, 2000);
}

// Live view: load the next picture once the previous one is shown, at the server's pace.
const live = document.getElementById("live");
if (live) {
  const next = () => setTimeout(() => { live.src = live.dataset.src + "?t=" + Date.now(); }, Number(live.dataset.intervalMs));
  live.addEventListener("load", next);
  live.addEventListener("error", () => setTimeout(next, 1000));
}

// A little progressive enhancement; every page works without it.
"use strict";

// Status page: refresh the live figures in place every 2 s.
const statusCards = document.getElementById("status");
if (statusCards) {
  const text = (id, value) => { const el = document.getElementById(id); if (el) el.textContent = value; };
  setInterval(async () => {
    try {
      const response = await fetch(statusCards.dataset.url, { credentials: "same-origin" });
      if (response.status === 401) { location.reload(); return; }  // the login expired: show the login page
      const s = await response.json();
      for (const key of ["state", "measured_fps", "capture_fps", "frames_analysed", "frames_dropped", "faces_in_view",
                         "camera_reconnects"]) text(key, s[key]);
      text("camera_online", s.camera_online ? "online" : "offline");
      text("seconds_since_last_frame", s.seconds_since_last_frame ?? "—");
      text("mqtt_connected", s.mqtt.connected ? "yes" : "no");
      text("outbox_backlog", s.mqtt.outbox_backlog);
      text("open_events", s.open_events.map((e) => e.type).join(", ") || "none");
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

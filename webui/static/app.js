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

// Review page: the session's recording segments played as one timeline. Segment i covers session seconds
// [start, start + duration); the next segment waits, preloaded, in a second (hidden) video element and
// takes over when the shown one ends. Timeline bars and flag rows (data-seek: session seconds) seek it.
const player = document.getElementById("player");
const firstVideo = document.getElementById("player-video");
if (player && firstVideo) {
  const segments = JSON.parse(player.dataset.segments);
  const readout = document.getElementById("player-clock");
  let active = firstVideo;
  let spare = document.getElementById("player-spare");
  active.dataset.index = "0";
  player.dataset.segment = "0";

  const clock = (seconds) => {
    const whole = Math.max(0, Math.round(seconds));
    const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
    return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${String(s).padStart(2, "0")}`;
  };
  // The segment showing session moment t and the time within it; a moment in a gap: the next segment's start.
  const locate = (t) => {
    const index = segments.findIndex((s) => t < s.start + s.duration);
    if (index < 0) return [segments.length - 1, segments[segments.length - 1].duration];
    return [index, Math.max(0, t - segments[index].start)];
  };
  const preload = (index) => {
    if (index >= segments.length || spare.dataset.index === String(index)) return;
    spare.dataset.index = String(index);
    spare.src = segments[index].url;
    spare.load();
  };
  const swap = () => {
    [active, spare] = [spare, active];
    spare.pause();
    for (const [element, shown] of [[active, true], [spare, false]]) {
      element.hidden = !shown;
      element.controls = shown;
      element.muted = !shown;
      element.id = shown ? "player-video" : "player-spare";
    }
  };
  const show = (index, offset, play) => {
    if (active.dataset.index !== String(index)) {
      if (spare.dataset.index === String(index)) {
        swap();
      } else {
        active.dataset.index = String(index);
        active.src = segments[index].url;
      }
    }
    player.dataset.segment = String(index);
    const go = () => {
      if (Math.abs(active.currentTime - offset) > 0.01) active.currentTime = offset;  // a preloaded segment is at 0
      if (play) active.play().catch(() => {});
    };
    if (active.readyState >= 1) go(); else active.addEventListener("loadedmetadata", go, { once: true });
    preload(index + 1);
  };
  for (const element of [active, spare]) {
    element.addEventListener("ended", (event) => {
      const index = Number(player.dataset.segment);
      if (event.target === active && index + 1 < segments.length) show(index + 1, 0, true);
    });
    element.addEventListener("timeupdate", (event) => {
      if (event.target !== active) return;
      const index = Number(player.dataset.segment);
      player.dataset.sessionTime = (segments[index].start + active.currentTime).toFixed(3);
      readout.textContent = `Session ${clock(Number(player.dataset.sessionTime))} · segment ${index + 1} of ${segments.length}`;
    });
  }
  preload(1);

  document.addEventListener("click", (event) => {
    const link = event.target.closest("[data-seek]");
    if (!link) return;
    event.preventDefault();
    const [index, offset] = locate(Number(link.dataset.seek));
    show(index, offset, true);
    const row = document.getElementById(`event-${link.dataset.event || link.closest("tr")?.id.slice(6)}`);
    document.querySelectorAll("tr.playing").forEach((r) => r.classList.remove("playing"));
    if (row) row.classList.add("playing");
    player.scrollIntoView({ block: "nearest" });
  });
  // A form sends where the player stands; the page comes back there (?at=), paused.
  document.querySelectorAll("main form[method=post]").forEach((form) => form.addEventListener("submit", () => {
    if (player.dataset.sessionTime === undefined) return;
    let field = form.querySelector("input[name=player_at]");
    if (!field) {
      field = Object.assign(document.createElement("input"), { type: "hidden", name: "player_at" });
      form.appendChild(field);
    }
    field.value = player.dataset.sessionTime;
  }));
  const resumeAt = Number(new URLSearchParams(location.search).get("at"));
  if (resumeAt > 0) show(...locate(resumeAt), false);
  // A flag's clip played in place pauses the session player (one sound at a time).
  document.querySelectorAll("details.clip video").forEach((clip) => clip.addEventListener("play", () => active.pause()));
}

// Review page: a clip's playhead runs along its marker, so the flag's start (the red line) is seen coming.
document.querySelectorAll("details.clip").forEach((details) => {
  const clip = details.querySelector("video"), head = details.querySelector(".clip-playhead");
  clip.addEventListener("timeupdate", () => {
    const x = clip.duration ? (100 * clip.currentTime / clip.duration).toFixed(2) : "0";
    head.setAttribute("x1", x);
    head.setAttribute("x2", x);
  });
});

"""The review page's player: how long the picture stops where one recording segment hands over to the next,
side by side for the page's player (the next segment preloaded in a second <video>) and a single <video>
whose source is swapped when a segment ends; and, for the alternative of joining the segments on the
server, how long remuxing the session's segments into one file takes here.

Runs the real web server on a kiosk that recorded a synthetic source (tests/review_kiosk.py: 6 segments of
4 s) and Debian's Chromium:

    nice .venv/bin/python bench/bench_review_player.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from conftest import free_port
from playwright.sync_api import sync_playwright
from review_kiosk import PASSWORD, review_kiosk
from test_browser_e2e import CHROMIUM, CHROMIUM_ARGS

# Loopback as is, and a kiosk reached over Wi-Fi (Chromium's network emulation: 40 ms latency, 10 Mbit/s).
NETWORKS = {
    "loopback": None,
    "wifi 40ms 10Mbit": {"offline": False, "latency": 40, "downloadThroughput": 1_250_000,
                         "uploadThroughput": 1_250_000},
}

ROUNDS = 4  # each plays the 5 boundaries of the session

# Each segment is played from 0.4 s before its end: the gap is from its 'ended' to the next one's 'playing'.
PAGE_PLAYER = """async () => {
  const player = document.getElementById('player');
  const segments = JSON.parse(player.dataset.segments);
  const gaps = [];
  for (let i = 0; i + 1 < segments.length; i++) {
    const video = document.getElementById('player-video');
    await new Promise((ok) => { if (video.readyState >= 2) ok(); else video.addEventListener('canplay', ok, {once: true}); });
    video.currentTime = Math.max(0, video.duration - 0.4);
    await new Promise((ok) => video.addEventListener('seeked', ok, {once: true}));
    let ended = 0;
    video.addEventListener('ended', () => { ended = performance.now(); }, {once: true});
    const playing = new Promise((ok) => {
      const next = (e) => {
        if (e.target === video) return;
        document.removeEventListener('playing', next, true);
        ok(performance.now());
      };
      document.addEventListener('playing', next, true);
    });
    await video.play();
    gaps.push((await playing) - ended);
    document.getElementById('player-video').pause();
  }
  return gaps;
}"""
SINGLE_ELEMENT = """async () => {
  const segments = JSON.parse(document.getElementById('player').dataset.segments);
  const video = document.createElement('video');
  video.muted = true;
  document.body.appendChild(video);
  const gaps = [];
  for (let i = 0; i + 1 < segments.length; i++) {
    video.src = segments[i].url;
    await new Promise((ok) => video.addEventListener('canplay', ok, {once: true}));
    video.currentTime = Math.max(0, video.duration - 0.4);
    await new Promise((ok) => video.addEventListener('seeked', ok, {once: true}));
    const ended = new Promise((ok) => video.addEventListener('ended', () => ok(performance.now()), {once: true}));
    await video.play();
    const at = await ended;
    video.src = segments[i + 1].url;
    await video.play();
    await new Promise((ok) => { if (!video.paused && video.readyState >= 3) ok(); else video.addEventListener('playing', ok, {once: true}); });
    gaps.push(performance.now() - at);
    video.pause();
  }
  return gaps;
}"""


def remux_seconds(files: list[Path], out: Path) -> float:
    """Join the segments into one MP4 (packets copied, timestamps shifted), as a server would per request."""
    began = time.perf_counter()
    with av.open(str(out), "w") as output:
        stream = None
        shift = 0
        for path in files:
            with av.open(str(path)) as source:
                video = source.streams.video[0]
                if stream is None:
                    stream = output.add_stream_from_template(video)
                last = 0
                for packet in source.demux(video):
                    if packet.dts is None:
                        continue
                    last = max(last, packet.pts + (packet.duration or 0))
                    packet.pts += shift
                    packet.dts += shift
                    packet.stream = stream
                    output.mux(packet)
                shift += last
    return time.perf_counter() - began


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        kiosk = review_kiosk(Path(folder), free_port())
        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=[
                    *CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"])
                page = browser.new_page()
                page.goto(f"{kiosk.url}/sessions/{kiosk.session_id}/review")
                page.fill("#password", PASSWORD)
                page.click("main button[type=submit]")
                results = {}
                for network, conditions in NETWORKS.items():
                    if conditions:
                        page.context.new_cdp_session(page).send("Network.emulateNetworkConditions", conditions)
                    for _ in range(ROUNDS):  # interleaved, so a busy moment of the machine hits both
                        for variant, script in (("preloaded", PAGE_PLAYER), ("single", SINGLE_ELEMENT)):
                            page.reload()
                            page.wait_for_selector("#player-video")
                            results.setdefault((network, variant), []).extend(page.evaluate(script))
                browser.close()
            segments = [Path(folder) / "data" / "recordings" / m.name
                        for m in kiosk.reader.media(kiosk.session_id) if m.kind == "segment"]
            joined = remux_seconds(segments, Path(folder) / "joined.mp4")
        finally:
            kiosk.close()
    print("handover gap at each segment boundary (ms): 'ended' of one segment to 'playing' of the next;")
    print("preloaded = the page's player (next segment in a second <video>), single = one <video>, src swapped")
    columns = [(network, variant) for network in NETWORKS for variant in ("preloaded", "single")]
    print(f"{'':>9}" + "".join(f"{f'{variant} ({network})':>30}" for network, variant in columns))
    for name, figure in (("median", statistics.median), ("90th pct", lambda xs: statistics.quantiles(xs, n=10)[-1]),
                         ("max", max)):
        print(f"{name:>9}" + "".join(f"{figure(results[column]):30.1f}" for column in columns))
    print(f"({len(results[columns[0]])} boundaries each: {ROUNDS} rounds of the session's 5)")
    seconds = sum(1 for _ in segments) * 4
    print(f"server-side join instead: remuxing {len(segments)} segments ({seconds} s of video) took "
          f"{1000 * joined:.0f} ms here, {1000 * joined / seconds * 3600 / 1000:.1f} s per hour of session "
          "before the first frame could play")


if __name__ == "__main__":
    main()

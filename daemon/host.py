"""The machine's own figures for the status page and /metrics: CPU load, temperature, free disk.

The daemon's "host" part (daemon/parts.py): nothing to start, only figures to report.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from daemon.parts import Figure, FiguresOnly, PartStatus

THERMAL_ZONES = Path("/sys/class/thermal")


@dataclass(frozen=True, slots=True)
class HostFigures:
    load_1m: float | None  # runnable processes, averaged over a minute; compare with `cpus`
    cpus: int
    temperature_c: float | None  # the CPU's, where the kernel exposes it (Pi, Jetson)
    disk_free_bytes: int  # on the file system holding the data directory
    disk_total_bytes: int


def host_figures(data_dir: Path, thermal_zones: Path = THERMAL_ZONES) -> HostFigures:
    try:
        load: float | None = os.getloadavg()[0]
    except OSError:
        load = None
    disk = shutil.disk_usage(_existing(data_dir))
    return HostFigures(load, os.cpu_count() or 1, cpu_temperature(thermal_zones), disk.free, disk.total)


class HostPart(FiguresOnly):
    name = "host"

    def __init__(self, data_dir: Path, thermal_zones: Path = THERMAL_ZONES):
        self._data_dir = data_dir
        self._thermal_zones = thermal_zones

    def status(self) -> PartStatus:
        host = host_figures(self._data_dir, self._thermal_zones)
        return PartStatus(self.name, "ok", None, (
            Figure("load_1m", "CPU load", None if host.load_1m is None else round(host.load_1m, 2),
                   help="Runnable processes averaged over a minute"),
            Figure("cpus", "CPUs", host.cpus, help="CPU cores"),
            Figure("cpu_temperature_celsius", "Temperature", host.temperature_c, "°C", help="CPU temperature"),
            Figure("disk_free_bytes", "Disk free", host.disk_free_bytes, "bytes",
                   help="Free space where the data is kept"),
            Figure("disk_total_bytes", "Disk size", host.disk_total_bytes, "bytes",
                   help="Size of the file system holding the data"),
        ), title="Machine")


def cpu_temperature(thermal_zones: Path = THERMAL_ZONES) -> float | None:
    """The CPU zone's temperature in °C, else the first zone's; None without any. (A Jetson also has
    zones such as PMIC-Die that always read 100 °C, so the CPU's is looked for by name.)"""
    zones = sorted(thermal_zones.glob("thermal_zone*"))
    preferred = [zone for zone in zones if "cpu" in _read(zone / "type").lower()]
    for zone in preferred + zones:
        try:
            return int(_read(zone / "temp")) / 1000
        except ValueError:
            continue
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path

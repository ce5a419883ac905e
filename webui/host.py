"""The machine's own figures for the status page and /metrics: CPU load, temperature, free disk."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

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

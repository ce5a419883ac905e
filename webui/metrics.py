"""/metrics in the Prometheus text format, read from the same snapshot as the status page at each scrape."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from webui.host import HostFigures


class DaemonCollector(Collector):
    def __init__(
        self,
        status: Callable[[], dict],
        host: Callable[[], HostFigures],
        event_counts: Callable[[], dict[str, int]],
    ):
        self._status = status
        self._host = host
        self._event_counts = event_counts

    def collect(self):
        status, host = self._status(), self._host()
        mqtt = status["mqtt"]
        counters = [  # (name without _total, help, value)
            ("proctord_frames_analysed", "Frames analysed", status["frames_analysed"]),
            ("proctord_frames_captured", "Frames delivered by the camera", status["frames_captured"]),
            ("proctord_frames_dropped", "Frames dropped because the analysis was busy", status["frames_dropped"]),
            ("proctord_camera_reconnects", "Times the camera was reopened", status["camera_reconnects"]),
            ("proctord_store_write_failures", "Database writes the disk refused (kept in memory and retried)",
             status["store"]["write_failures"]),
        ]
        gauges = [
            ("proctord_fps", "Frames analysed per second (smoothed)", status["measured_fps"]),
            ("proctord_capture_fps", "Frames the camera delivers per second", status["capture_fps"]),
            ("proctord_camera_online", "1 while the camera delivers frames", int(status["camera_online"])),
            ("proctord_faces_in_view", "Faces in the last analysed frame", status["faces_in_view"]),
            ("proctord_session_running", "1 while a session runs", int(status["session"] is not None)),
            ("proctord_mqtt_connected", "1 while connected to the broker", int(mqtt["connected"])),
            ("proctord_outbox_backlog", "MQTT messages waiting for the broker", mqtt["outbox_backlog"]),
            ("proctord_store_pending_writes", "Database writes waiting to commit", status["store"]["pending_writes"]),
            ("proctord_store_ok", "1 while database writes succeed", int(status["store"]["state"] == "ok")),
            ("proctord_disk_free_bytes", "Free space where the data is kept", host.disk_free_bytes),
        ]
        if host.temperature_c is not None:
            gauges.append(("proctord_cpu_temperature_celsius", "CPU temperature", host.temperature_c))
        for name, help_text, value in counters:
            yield CounterMetricFamily(name, help_text, value=value)
        for name, help_text, value in gauges:
            yield GaugeMetricFamily(name, help_text, value=value)

        inference = GaugeMetricFamily("proctord_inference_ms", "Inference time per stage (smoothed)", labels=["stage"])
        for stage, ms in sorted(status["inference_ms"].items()):
            inference.add_metric([stage], ms)
        yield inference
        events = CounterMetricFamily("proctord_events", "Proctoring events recorded, by type", labels=["type"])
        for event_type, count in sorted(self._event_counts().items()):
            events.add_metric([event_type], count)
        yield events


def metrics_registry(collector: DaemonCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)  # the daemon's own CPU time and memory
    return registry

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
        yield CounterMetricFamily("proctord_frames_analysed", "Frames analysed", value=status["frames_analysed"])
        yield CounterMetricFamily("proctord_frames_captured", "Frames delivered by the camera",
                                  value=status["frames_captured"])
        yield CounterMetricFamily("proctord_frames_dropped", "Frames dropped because the analysis was busy",
                                  value=status["frames_dropped"])
        yield GaugeMetricFamily("proctord_fps", "Frames analysed per second (smoothed)", value=status["measured_fps"])
        inference = GaugeMetricFamily("proctord_inference_ms", "Inference time per stage (smoothed)", labels=["stage"])
        for stage, ms in sorted(status["inference_ms"].items()):
            inference.add_metric([stage], ms)
        yield inference
        events = CounterMetricFamily("proctord_events", "Proctoring events recorded, by type", labels=["type"])
        for event_type, count in sorted(self._event_counts().items()):
            events.add_metric([event_type], count)
        yield events
        yield GaugeMetricFamily("proctord_session_running", "1 while a session runs",
                                value=int(status["session"] is not None))
        yield GaugeMetricFamily("proctord_faces_in_view", "Faces in the last analysed frame",
                                value=status["faces_in_view"])
        mqtt = status["mqtt"]
        yield GaugeMetricFamily("proctord_mqtt_connected", "1 while connected to the broker",
                                value=int(mqtt["connected"]))
        yield GaugeMetricFamily("proctord_outbox_backlog", "MQTT messages waiting for the broker",
                                value=mqtt["outbox_backlog"])
        yield GaugeMetricFamily("proctord_disk_free_bytes", "Free space where the data is kept",
                                value=host.disk_free_bytes)
        if host.temperature_c is not None:
            yield GaugeMetricFamily("proctord_cpu_temperature_celsius", "CPU temperature",
                                    value=host.temperature_c)


def metrics_registry(collector: DaemonCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)  # the daemon's own CPU time and memory
    return registry

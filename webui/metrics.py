"""/metrics in the Prometheus text format, generated at each scrape from the same snapshot as the status
page: every part's figure is a metric, proctord_<part>_<key> (counters end in _total).

A figure that is None (not measured here), an "info" figure (text) or a stale one (the camera is offline,
so it describes the past) is left out: Prometheus then marks the series stale itself.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from daemon.parts import DaemonStatus

_FAMILIES = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily}


class DaemonCollector(Collector):
    def __init__(self, status: Callable[[], DaemonStatus], event_counts: Callable[[], dict[str, int]]):
        self._status = status
        self._event_counts = event_counts

    def collect(self):
        for part in self._status().parts:
            for figure in part.figures:
                if figure.kind not in _FAMILIES or figure.value is None or figure.stale:
                    continue
                name = f"proctord_{part.name}_{figure.key}"
                yield _FAMILIES[figure.kind](name, figure.help or figure.label, value=float(figure.value))
        events = CounterMetricFamily("proctord_events", "Proctoring events recorded, by type", labels=["type"])
        for event_type, count in sorted(self._event_counts().items()):
            events.add_metric([event_type], count)
        yield events


def metrics_registry(collector: DaemonCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)  # the daemon's own CPU time and memory
    return registry

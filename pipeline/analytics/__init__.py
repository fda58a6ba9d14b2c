"""Zones over tracks: line crossings, polygon enter/exit/occupancy/dwell, per-class counts -> Events.

Pure and per stream, like the trackers (`StreamAnalytics`); `AnalyticsStage` is the runtime's hook.
"""

from pipeline.analytics.stream import StreamAnalytics
from pipeline.analytics.zones import LineZone, PolygonZone, Zones, load_zones, zones_from_data

__all__ = ["StreamAnalytics", "LineZone", "PolygonZone", "Zones", "load_zones", "zones_from_data"]

"""kinspect's views: one widget each, reading engine views and step results, never mutating."""

from .event_log import EventLog, Narration
from .footprint import FootprintPlot
from .page_map import PageMap, SessionPages
from .report_view import ReportView
from .shadow_bytes import ShadowBytes, ShadowLegend
from .shadow_slab import ShadowSlabView
from .struct_page import StructPageView

__all__ = [
    "EventLog",
    "FootprintPlot",
    "Narration",
    "PageMap",
    "ReportView",
    "SessionPages",
    "ShadowBytes",
    "ShadowLegend",
    "ShadowSlabView",
    "StructPageView",
]

"""The time-travel controller: a cursor over a workload or a trace on a simulated machine.

- ``cursor``: ``Session`` (position, stepping, going back, runs, breakpoints), ``Breakpoint``,
  ``SchemeView`` (a scheme's reverse maps for the views);
- ``checkpoints``: checkpoints as chunks of the machine's buffers (``CheckpointStore``), the
  spares and the ladder made in idle time (``Standby``);
- ``recording``: what each event changed (``StepResult``, ``AttachEvent``) and the
  footprints after each event;
- ``sources``: where the events come from (a ``.kw`` workload, an ftrace capture:
  ``load_trace``) and the compiled fast forward through a trace;
- ``queries``: the questions the inspector asks of a session (imported from there).

It drives the engine (kinspect.engine) and is driven by the UI; the engine never imports it.
"""

from ..engine.ranges import merge_ranges, ranges_contain
from .checkpoints import CheckpointStore, Standby
from .cursor import Breakpoint, SchemeView, Session, ShadowSlabInfo, registered_schemes
from .recording import REFERENCE_SCHEME, AttachEvent, StepResult
from .sources import TraceRunner, load_trace

__all__ = [
    "REFERENCE_SCHEME",
    "AttachEvent",
    "Breakpoint",
    "CheckpointStore",
    "SchemeView",
    "Session",
    "ShadowSlabInfo",
    "Standby",
    "StepResult",
    "TraceRunner",
    "load_trace",
    "merge_ranges",
    "ranges_contain",
    "registered_schemes",
]

# cython: language_level=3
"""``WorkloadRunner.run()`` on the native engine (issue 12): the loop over a workload's events
in C.

``kmalloc``/``kzalloc``/``kmalloc_node`` and ``kfree``, the commonest statements by far, call
the compiled slab allocator's entry points (_slab.pyx: ``SlubAllocator.kmalloc_``, ``kfree_``,
the very code of ``Machine.kmalloc``/``kfree`` on this engine) with the event's track, without
a Python call; every other statement is run by ``WorkloadRunner._step()`` (one event through
``_run()``, the Python rule), which this loop does exactly as it does for those (``_run`` is the
reference; tests run both engines): the position, the machine's ip for reports and tracks, the value bound to the target,
a failed allocation counted, the new reports numbered with the event and kept as
``last_reports`` for an ``expect``, a KernelOops naming the line, the callbacks.
"""

from cpython.dict cimport PyDict_SetItem
from cpython.list cimport PyList_GET_SIZE
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM
from libc.stdint cimport int64_t, uint64_t

import sys

from ._slab cimport SlubAllocator
from .machine import KernelOops

cdef enum:
    # Event fields (workload.Event)
    EV_INDEX = 0
    EV_PATH = 1
    EV_LINE = 2
    EV_OP = 4
    EV_TARGET = 5
    EV_ARGS = 6
    EV_FRAME = 7


cdef inline object field(ev, Py_ssize_t i):
    """Field i of an Event or Addr, read as a tuple's item: a NamedTuple's own indexing goes
    through __getitem__ looked up by name (slot_sq_item), ten times the cost."""
    return <object>PyTuple_GET_ITEM(ev, i)


cdef str KFREE = sys.intern("kfree"), KMALLOC = sys.intern("kmalloc")   # as the parser's
cdef enum:
    OTHER = 0
    OP_KFREE = 1
    OP_KMALLOC = 2


cdef inline int fast_op(str op):
    """OP_KFREE for ``op_kfree``, OP_KMALLOC for ``op_kmalloc`` and its aliases
    (WorkloadRunner.op_kzalloc, op_kmalloc_node), else OTHER. The parser interns the
    statement names: a pointer comparison, most of the time."""
    if op is KFREE:
        return OP_KFREE
    if op is KMALLOC:
        return OP_KMALLOC
    if op == "kfree":
        return OP_KFREE
    if op == "kmalloc" or op == "kzalloc" or op == "kmalloc_node":
        return OP_KMALLOC
    return OTHER


def run(runner, on_reports, after_event):
    """``WorkloadRunner.run()``'s loop: every remaining event; the failed expectations."""
    cdef SlubAllocator slub = runner.machine.slub
    cdef list reports = runner.machine.reports
    cdef dict values = runner.values
    cdef Py_ssize_t before, n, last_start = 0, last_end = 0
    cdef bint last_here = False         # last_reports is reports[last_start:last_end]
    cdef bint fast = False
    cdef int kind
    cdef int64_t position = runner.position, pid, line
    cdef uint64_t track
    cdef str op
    machine = runner.machine
    failed = machine.failed
    mask = runner._mask
    step = runner._step
    pid = machine.task.pid
    # The machine's entry points are the compiled ones (Machine._bind_slab_entry_points), not
    # some wrapper of them (a test's, an observer's): then this loop may call them in C.
    cdef bint kmalloc_here = machine.kmalloc == slub.machine_kmalloc
    cdef bint kfree_here = machine.kfree == slub.machine_kfree
    # machine.ip and ip_handle are plain attributes: set in the instance's dict directly
    assert not hasattr(type(machine), "ip") and not hasattr(type(machine), "ip_handle")
    cdef dict machine_dict = machine.__dict__
    try:
        for ev in runner._events:
            if not PyTuple_Check(ev):
                raise TypeError(f"a workload event is a workload.Event, not {type(ev)}")
            op = field(ev, EV_OP)
            line = field(ev, EV_LINE)
            kind = fast_op(op)
            fast = ((kind == OP_KMALLOC and kmalloc_here) or (kind == OP_KFREE and kfree_here)) \
                and 0 <= pid < (1 << 31) and 0 <= line < (<int64_t>1 << 32)
            if fast:
                position += 1
                PyDict_SetItem(machine_dict, "ip", field(ev, EV_FRAME))       # machine.ip
                PyDict_SetItem(machine_dict, "ip_handle", field(ev, EV_LINE))
                track = (<uint64_t>pid) << 32 | <uint64_t>line       # Machine._track()
                before = PyList_GET_SIZE(reports)
                args = field(ev, EV_ARGS)
                if kind == OP_KFREE:                                  # op_kfree()
                    a = field(args, 0)                                # an Addr: var, offset
                    var = field(a, 0)
                    slub.kfree_(field(a, 1) if var is None
                                else (values[var] + field(a, 1)) & mask, track)
                else:                                                 # op_kmalloc()
                    value = slub.kmalloc_(field(args, 0), track)
                    target = field(ev, EV_TARGET)
                    if target is not None:
                        values[target] = value
                        if not value:
                            failed[op] += 1
                n = PyList_GET_SIZE(reports)
                last_start, last_end, last_here = before, n, True
                if n != before:
                    new = reports[before:]
                    for r in new:
                        r.event_index = field(ev, EV_INDEX)
                    if on_reports is not None:
                        runner.position = position
                        on_reports(new)
                        pid = machine.task.pid
            else:
                if last_here:
                    runner.last_reports = reports[last_start:last_end]
                    last_here = False
                runner.position = position
                position += 1                   # as _run() counts it, even if it raises
                new = step(ev)
                pid = machine.task.pid          # a task statement may have switched it
                if new and on_reports is not None:
                    on_reports(new)
                    pid = machine.task.pid
            if after_event is not None:
                runner.position = position
                after_event(ev)
                pid = machine.task.pid
    except KernelOops as e:
        if fast:                            # as WorkloadRunner._run() does
            raise KernelOops(e.message, field(ev, EV_PATH), field(ev, EV_LINE)) from None
        raise
    finally:
        runner.position = position
        if last_here:
            runner.last_reports = reports[last_start:last_end]
    return runner.expect_failures

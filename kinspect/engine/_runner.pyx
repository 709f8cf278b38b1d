# cython: language_level=3
"""``WorkloadRunner.run()`` on the native engine (issue 12): the loop over a workload's events
in C.

``kmalloc``/``kzalloc``/``kmalloc_node`` and ``kfree``, the commonest statements by far, call
the compiled slab allocator's entry points (_slab.pyx: ``SlubAllocator.kmalloc_``, ``kfree_``,
the very code of ``Machine.kmalloc``/``kfree`` on this engine) with the event's track, without
a Python call; every other statement is run by ``WorkloadRunner._step()``, the Python rule,
which this loop does exactly as it does for those (``_step`` is the reference; tests run both
engines): the position, the machine's ip for reports and tracks, the value bound to the target,
a failed allocation counted, the new reports numbered with the event and kept as
``last_reports`` for an ``expect``, a KernelOops naming the line, the callbacks.
"""

from cpython.list cimport PyList_GET_SIZE
from libc.stdint cimport int64_t, uint64_t

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


cdef inline bint is_kmalloc(str op):
    """``op_kmalloc`` and its aliases (WorkloadRunner.op_kzalloc, op_kmalloc_node)."""
    return op == "kmalloc" or op == "kzalloc" or op == "kmalloc_node"


def run(runner, on_reports, after_event):
    """``WorkloadRunner.run()``'s loop: every remaining event; the failed expectations."""
    cdef SlubAllocator slub = runner.machine.slub
    cdef list reports = runner.machine.reports
    cdef dict values = runner.values
    cdef Py_ssize_t before, n, last_start = 0, last_end = 0
    cdef bint last_here = False         # last_reports is reports[last_start:last_end]
    cdef bint fast = False
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
    try:
        for ev in runner._events:
            op = ev[EV_OP]
            line = ev[EV_LINE]
            fast = ((kmalloc_here and is_kmalloc(op)) or (kfree_here and op == "kfree")) \
                and 0 <= pid < (1 << 31) and 0 <= line < (<int64_t>1 << 32)
            if fast:
                position += 1
                machine.ip = ev[EV_FRAME]
                machine.ip_handle = line
                track = (<uint64_t>pid) << 32 | <uint64_t>line       # Machine._track()
                before = PyList_GET_SIZE(reports)
                args = ev[EV_ARGS]
                if op == "kfree":                                     # op_kfree()
                    a = args[0]
                    slub.kfree_(a.offset if a.var is None else (values[a.var] + a.offset) & mask,
                                track)
                else:                                                 # op_kmalloc()
                    value = slub.kmalloc_(args[0], track)
                    target = ev[EV_TARGET]
                    if target is not None:
                        values[target] = value
                        if not value:
                            failed[op] += 1
                n = PyList_GET_SIZE(reports)
                last_start, last_end, last_here = before, n, True
                if n != before:
                    new = reports[before:]
                    for r in new:
                        r.event_index = ev[EV_INDEX]
                    if on_reports is not None:
                        runner.position = position
                        on_reports(new)
            else:
                if last_here:
                    runner.last_reports = reports[last_start:last_end]
                    last_here = False
                runner.position = position
                new = step(ev)
                position = runner.position
                pid = machine.task.pid          # a task statement may have switched it
                if new and on_reports is not None:
                    on_reports(new)
            if after_event is not None:
                runner.position = position
                after_event(ev)
                pid = machine.task.pid
    except KernelOops as e:
        if fast:                            # WorkloadRunner._call()'s, as _step() does
            raise KernelOops(e.message, ev[EV_PATH], ev[EV_LINE]) from None
        raise
    finally:
        runner.position = position
        if last_here:
            runner.last_reports = reports[last_start:last_end]
    return runner.expect_failures

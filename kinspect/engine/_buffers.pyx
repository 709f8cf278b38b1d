"""The machines' buffers as the write tracker reads them (kinspect/session/written.py): where a
writable buffer's bytes are (the buffer protocol: no ctypes object made), and the bytes of it
outside the pages it arms, kept when armed and compared with memcmp when looked at. A restore
arms and looks over a machine's 300-400 buffers: 3-4 ms of ctypes calls in Python late in the
real trace at 1 TiB, a quarter of a step back."""

from cpython.buffer cimport (
    PyBUF_C_CONTIGUOUS,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uintptr_t
from libc.string cimport memcmp

cdef enum:
    PAGE = 4096  # (written.PAGE: the granule the kernel reports writes in)


cdef bint _place(object buf, Py_ssize_t *at, Py_ssize_t *n):
    """Where a writable, C-contiguous buffer's bytes are, and how many; False when it is not
    one (immutable bytes, a read-only or strided array) or is empty."""
    cdef Py_buffer view
    try:
        PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
    except (BufferError, TypeError, ValueError):
        return False
    at[0] = <Py_ssize_t><uintptr_t>view.buf
    n[0] = view.len
    PyBuffer_Release(&view)
    return n[0] > 0


cdef inline void _inner(Py_ssize_t at, Py_ssize_t n, Py_ssize_t *start, Py_ssize_t *end):
    """[start, end) of the pages wholly inside [at, at + n) (empty when start >= end)."""
    start[0] = (at + PAGE - 1) // PAGE * PAGE
    end[0] = (at + n) // PAGE * PAGE


def inner_pages(Py_ssize_t at, Py_ssize_t n):
    """[start, end) of the pages wholly inside [at, at + n): what is armed of a buffer there
    (empty when start >= end)."""
    cdef Py_ssize_t start, end
    _inner(at, n, &start, &end)
    return start, end


def address_of(buf):
    """Where a writable, C-contiguous buffer's bytes are, and how many: (address, length), or
    None."""
    cdef Py_ssize_t at, n
    return (at, n) if _place(buf, &at, &n) else None


def arm_places(buffers, list serials, set rearmed, generation, dict armed_as, protect):
    """``WriteTracker.arm``'s walk: for each buffer of more than one piece (a tuple of
    ``serials``), its pages armed (``protect(at, n)``, unless its index is in ``rearmed``) and
    its place (address, length, ``generation``, its serials, its bytes before its first page
    armed and after its last, as they are), ``armed_as`` noting it; else None."""
    cdef list places = []
    cdef Py_ssize_t i, at, n, start, end
    for i in range(min(len(buffers), len(serials))):
        buf = buffers[i]
        pieces = serials[i]
        if (
            type(pieces) is not tuple
            or not _place(buf, &at, &n)
            or (i not in rearmed and not protect(at, n))
        ):
            armed_as.pop(id(buf), None)
            places.append(None)
            continue
        armed_as[id(buf)] = generation
        _inner(at, n, &start, &end)
        places.append(
            (
                at,
                n,
                generation,
                pieces,
                PyBytes_FromStringAndSize(<char *><uintptr_t>at, start - at),
                PyBytes_FromStringAndSize(<char *><uintptr_t>end, at + n - end),
            )
        )
    return places


def looked_at(list places, buffers, dict armed_as, Py_ssize_t piece):
    """``WriteTracker.since``'s first walk: for each buffer still armed as ``places`` says
    (``armed_as`` names that arming, and it has not moved), (the serials of its pieces then,
    the pieces to look at: those whose bytes outside the pages armed differ from what they
    were, as piece -> (start, end) in the buffer, its address, its length), else None; and
    (address, length, index) of those."""
    cdef list found = [None] * len(buffers)
    cdef list valid = []
    cdef Py_ssize_t index, i, at, n, was_at, was_n, start, end
    cdef bytes head, tail
    for index in range(min(len(places), len(buffers))):
        place = places[index]
        if place is None:
            continue
        buf = buffers[index]
        if armed_as.get(id(buf)) != place[2] or not _place(buf, &at, &n):
            continue
        was_at, was_n = place[0], place[1]
        if at != was_at or n != was_n:
            continue
        valid.append((at, n, index))
        head, tail = place[4], place[5]
        _inner(at, n, &start, &end)
        look = {}
        if PyBytes_GET_SIZE(head) and memcmp(
            <char *><uintptr_t>at, PyBytes_AS_STRING(head), PyBytes_GET_SIZE(head)
        ):
            look[0] = (0, start - at)
        if PyBytes_GET_SIZE(tail) and memcmp(
            <char *><uintptr_t>end, PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail)
        ):
            for i in range((end - at) // piece, (n - 1) // piece + 1):
                look[i] = (max(i * piece, end - at), min(n, (i + 1) * piece))
        found[index] = (place[3], look, at, n)
    return found, valid

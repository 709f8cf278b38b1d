"""The compiled ftrace kmem scanner: ``TraceReader._block`` in C (issue 12).

``BlockScanner(reader)(block, lineno)`` reads a block of whole lines as the Python reader's
block scanner does (the ``_BLOCK`` regex of ftrace.py and ``TraceReader._block``) and gives
the same ``(events, the last line's number, the TraceError that stopped the block or None)``,
with the same statistics, caches and pointer-hashing check on the reader, the events packed in
columns (``ftrace.EventBatch``) rather than one tuple each: strings (call sites, cache names)
and tasks are indexes into tables the reader keeps (``reader.strings_table``,
``reader.tasks_table``), each entry made once. A line in the
common layout of every era (task prefix, one space after the event name, the fields in
TP_printk order) is decoded here; any other line goes to ``reader._line``, the per-line path,
exactly the lines that ``_BLOCK`` hands it. The Python reader stays the reference:
tests/test_native_ftrace.py reads real traces and malformed lines both ways.

The common layout, as ``_BLOCK`` has it (WS is whitespace without the newline):

    WS* COMM-PID WS+ [(TGID) WS+] [CPU] WS+ [FLAGS WS+] SECS.USECS: WS+ EVENT: FIELDS

where COMM-PID ends at the first ``-<digits><WS>`` of the line, and the FIELDS of a kmem
event are those of its TP_printk in include/trace/events/kmem.h (6.12; the same order in every
era): ``call_site= ptr= bytes_req= bytes_alloc= ...`` (kmalloc, kmem_cache_alloc),
``call_site= ptr= [name=]`` (kfree, kmem_cache_free), ``page= pfn= order= ...``
(mm_page_alloc, mm_page_free...). Another event with a plain name is counted by name. A
number longer than its type allows (PID_DIGITS...) takes the per-line path, which checks it.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t
from libc.string cimport memchr, memcmp, strlen

import numpy as np

from . import ftrace
from .errors import TraceError

# The kmem tracepoints by index: their names (the keys of the per-block counts) and kinds.
cdef tuple EVENT_NAMES = tuple(ftrace.EVENT_KINDS)
cdef Py_ssize_t NR_EVENTS = len(EVENT_NAMES)
cdef enum:
    MAX_EVENTS = 16
cdef const char *EVENT_NAME[MAX_EVENTS]
cdef Py_ssize_t EVENT_NAME_LENGTH[MAX_EVENTS]
cdef int EVENT_KIND[MAX_EVENTS]
assert NR_EVENTS <= MAX_EVENTS
for _k, _name in enumerate(EVENT_NAMES):
    EVENT_NAME[_k] = PyBytes_AS_STRING(_name)      # EVENT_NAMES keeps them
    EVENT_NAME_LENGTH[_k] = PyBytes_GET_SIZE(_name)
    EVENT_KIND[_k] = ftrace.EVENT_KINDS[_name]
cdef int KMEM_CACHE_ALLOC = ftrace.KMEM_CACHE_ALLOC     # kinds up to it: allocations
cdef int PAGE_ALLOC = ftrace.PAGE_ALLOC                 # kinds from it on: page events

cdef const char *TRACING_MARK_WRITE = b"tracing_mark_write"
cdef Py_ssize_t TRACING_MARK_WRITE_LENGTH = strlen(TRACING_MARK_WRITE)
# The most digits a value of the common layout may have (longer ones take the per-line path,
# which checks them): a pid has at most 7 (PID_MAX_LIMIT, 4194304); a pointer or an unsigned
# long, 16 hex or 19 decimal (so that it fits a u64); an order, 9 (it fits an unsigned int).
cdef Py_ssize_t PID_DIGITS = 7, HEX_DIGITS = 16, DECIMAL_DIGITS = 19, ORDER_DIGITS = 9


cdef struct KmemLine:
    # spans [start, end) of the line's parts
    Py_ssize_t task_start, task_end         # "comm-pid", the key of reader._tasks
    Py_ssize_t name_start, name_end         # the event's name
    int event                               # index in EVENT_NAMES, or -1: another event
    Py_ssize_t call_site_start, call_site_end
    Py_ssize_t ptr_start, ptr_end           # hex digits or "(null)"
    Py_ssize_t cache_start, cache_end       # kmem_cache_free's name=, empty if none
    Py_ssize_t first_start, first_end       # bytes_req, or pfn
    Py_ssize_t second_start, second_end     # bytes_alloc, or order


cdef inline bint is_ws(unsigned char c) noexcept:
    """_WS: whitespace other than the newline."""
    return c == c' ' or c == c'\t' or c == c'\r' or c == c'\f' or c == c'\v'


cdef inline bint is_digit(unsigned char c) noexcept:
    return c'0' <= c <= c'9'


cdef inline bint is_hex(unsigned char c) noexcept:
    """[0-9a-f]: %p and %lx print lower case."""
    return c'0' <= c <= c'9' or c'a' <= c <= c'f'


cdef inline bint is_graph(unsigned char c) noexcept:
    """[!-~]: a printable ASCII character other than the space."""
    return c'!' <= c <= c'~'


cdef inline bint is_word(unsigned char c) noexcept:
    """\\w of a bytes regex."""
    return (c'a' <= c <= c'z' or c'A' <= c <= c'Z' or c'0' <= c <= c'9' or c == c'_')


cdef inline Py_ssize_t skip_ws(const unsigned char *s, Py_ssize_t i, Py_ssize_t n) noexcept:
    while i < n and is_ws(s[i]):
        i += 1
    return i


cdef inline Py_ssize_t skip_digits(const unsigned char *s, Py_ssize_t i, Py_ssize_t n) noexcept:
    while i < n and is_digit(s[i]):
        i += 1
    return i


cdef inline Py_ssize_t skip_hex(const unsigned char *s, Py_ssize_t i, Py_ssize_t n) noexcept:
    while i < n and is_hex(s[i]):
        i += 1
    return i


cdef inline Py_ssize_t expect(const unsigned char *s, Py_ssize_t i, Py_ssize_t n,
                              const char *text, Py_ssize_t length) noexcept:
    """The position after ``text`` if it is at i, else -1."""
    if i < 0 or n - i < length or memcmp(s + i, text, length) != 0:
        return -1
    return i + length


cdef Py_ssize_t read_task_prefix(const unsigned char *s, Py_ssize_t n, KmemLine *line) noexcept:
    """``WS* COMM-PID WS+ [(TGID) WS+] [CPU] WS+``: the position after it, or -1."""
    cdef Py_ssize_t i = skip_ws(s, 0, n), p, q = 0
    line.task_start = i
    p = i
    while True:                     # COMM ends at the first "-<digits><WS>"
        while p < n and s[p] != c'-':
            p += 1
        if p >= n:
            return -1
        q = skip_digits(s, p + 1, n)
        if q > p + 1 and q < n and is_ws(s[q]):
            break
        p += 1
    if q - (p + 1) > PID_DIGITS:
        return -1
    line.task_end = q
    i = skip_ws(s, q, n)
    if i < n and s[i] == c'(':       # the tgid column (options/record-tgid)
        p = skip_ws(s, i + 1, n)
        q = p
        while q < n and (is_digit(s[q]) or s[q] == c'-'):
            q += 1
        if q == p or q >= n or s[q] != c')':
            return -1
        i = skip_ws(s, q + 1, n)
        if i == q + 1:
            return -1
    if i >= n or s[i] != c'[':
        return -1
    q = skip_digits(s, i + 1, n)
    if q == i + 1 or q >= n or s[q] != c']':
        return -1
    i = skip_ws(s, q + 1, n)
    if i == q + 1:
        return -1
    return i


cdef Py_ssize_t read_pointer(const unsigned char *s, Py_ssize_t i, Py_ssize_t n,
                             KmemLine *line) noexcept:
    """``ptr=WS*(\\(null\\)|[0-9a-f]+)``: the position after it, or -1."""
    i = expect(s, i, n, b"ptr=", 4)
    if i < 0:
        return -1
    i = skip_ws(s, i, n)
    line.ptr_start = i
    if expect(s, i, n, b"(null)", 6) > 0:
        line.ptr_end = i + 6
    else:
        line.ptr_end = skip_hex(s, i, n)
        if line.ptr_end == i or line.ptr_end - i > HEX_DIGITS:
            return -1
    return line.ptr_end


cdef Py_ssize_t read_call_site(const unsigned char *s, Py_ssize_t i, Py_ssize_t n,
                               KmemLine *line) noexcept:
    """``: call_site=[!-~]+ ``: the position after it, or -1."""
    i = expect(s, i, n, b": call_site=", 12)
    if i < 0:
        return -1
    line.call_site_start = i
    while i < n and is_graph(s[i]):
        i += 1
    line.call_site_end = i
    if i == line.call_site_start:
        return -1
    return expect(s, i, n, b" ", 1)


cdef bint read_kmalloc_fields(const unsigned char *s, Py_ssize_t i, Py_ssize_t n,
                              KmemLine *line) noexcept:
    """kmalloc, kmem_cache_alloc (and *_node): ``: call_site= ptr= bytes_req= bytes_alloc=``
    then anything."""
    i = read_pointer(s, read_call_site(s, i, n, line), n, line)
    i = expect(s, i, n, b" bytes_req=", 11)
    if i < 0:
        return False
    line.first_start = i
    line.first_end = i = skip_digits(s, i, n)
    if i == line.first_start or i - line.first_start > DECIMAL_DIGITS:
        return False
    i = expect(s, i, n, b" bytes_alloc=", 13)
    if i < 0:
        return False
    line.second_start = i
    line.second_end = skip_digits(s, i, n)
    return 0 < line.second_end - i <= DECIMAL_DIGITS


cdef bint read_kfree_fields(const unsigned char *s, Py_ssize_t i, Py_ssize_t n,
                            KmemLine *line) noexcept:
    """kfree, kmem_cache_free: ``: call_site= ptr= [name=]``, then only whitespace."""
    i = read_pointer(s, read_call_site(s, i, n, line), n, line)
    if i < 0:
        return False
    line.cache_start = line.cache_end = i
    if expect(s, i, n, b" name=", 6) > 0:
        line.cache_start = i = i + 6
        while i < n and is_graph(s[i]):
            i += 1
        line.cache_end = i
        if i == line.cache_start:
            return False
    return skip_ws(s, i, n) == n


cdef bint read_mm_page_fields(const unsigned char *s, Py_ssize_t i, Py_ssize_t n,
                              KmemLine *line) noexcept:
    """mm_page_alloc, mm_page_free...: ``: page= pfn= order=`` then anything; the pfn is
    0x<hex>, 0 or a decimal without a leading zero."""
    i = expect(s, i, n, b": page=", 7)
    if i < 0:
        return False
    i = skip_ws(s, i, n)
    line.first_start = i
    while i < n and not is_ws(s[i]):
        i += 1
    if i == line.first_start:
        return False
    i = expect(s, i, n, b" pfn=", 5)
    if i < 0:
        return False
    line.first_start = i
    if expect(s, i, n, b"0x", 2) > 0:
        i = skip_hex(s, i + 2, n)
        if not 0 < i - (line.first_start + 2) <= HEX_DIGITS:
            return False
    elif i < n and s[i] == c'0':
        i += 1
    else:
        i = skip_digits(s, i, n)
        if not 0 < i - line.first_start <= DECIMAL_DIGITS:
            return False
    line.first_end = i
    i = expect(s, i, n, b" order=", 7)
    if i < 0:
        return False
    line.second_start = i
    line.second_end = skip_digits(s, i, n)
    return 0 < line.second_end - i <= ORDER_DIGITS


cdef int find_kmem_event(const unsigned char *name, Py_ssize_t length) noexcept:
    """The index of a kmem tracepoint's name in EVENT_NAMES, or -1."""
    cdef int k
    for k in range(NR_EVENTS):
        if EVENT_NAME_LENGTH[k] == length and memcmp(EVENT_NAME[k], name, length) == 0:
            return k
    return -1


cdef bint read_event(const unsigned char *s, Py_ssize_t i, Py_ssize_t n, KmemLine *line) noexcept:
    """``SECS.USECS: WS+ EVENT: FIELDS`` to the end of the line."""
    cdef Py_ssize_t q = skip_digits(s, i, n), colon, kind
    cdef const unsigned char *found
    if q == i or q >= n or s[q] != c'.':
        return False
    i = skip_digits(s, q + 1, n)
    if i == q + 1 or i >= n or s[i] != c':':
        return False
    q = skip_ws(s, i + 1, n)
    if q == i + 1:
        return False
    found = <const unsigned char *>memchr(s + q, c':', n - q)
    if found == NULL:
        return False
    colon = found - s
    line.name_start, line.name_end = q, colon
    line.event = find_kmem_event(s + q, colon - q)
    if line.event >= 0:
        kind = EVENT_KIND[line.event]
        if kind <= KMEM_CACHE_ALLOC:
            return read_kmalloc_fields(s, colon, n, line)
        if kind < PAGE_ALLOC:
            return read_kfree_fields(s, colon, n, line)
        return read_mm_page_fields(s, colon, n, line)
    if colon == q or (colon - q == TRACING_MARK_WRITE_LENGTH and
                      memcmp(s + q, TRACING_MARK_WRITE, colon - q) == 0):
        return False                # trace_marker writes take the per-line path
    while q < colon:
        if not is_word(s[q]):
            return False
        q += 1
    return True


cdef bint read_common_line(const unsigned char *s, Py_ssize_t n, KmemLine *line) noexcept:
    """Whether a line is in the common layout (then ``line`` holds its parts)."""
    cdef Py_ssize_t i, flags_end, after_flags
    if n > 0 and s[0] == c'#':
        return False
    i = read_task_prefix(s, n, line)
    if i < 0:
        return False
    flags_end = i                   # the flags column is optional: with it first
    while flags_end < n and not is_ws(s[flags_end]):
        flags_end += 1
    after_flags = skip_ws(s, flags_end, n)
    if flags_end > i and after_flags > flags_end and read_event(s, after_flags, n, line):
        return True
    return read_event(s, i, n, line)


cdef unsigned long long number(const unsigned char *s, Py_ssize_t start, Py_ssize_t end,
                               int base) noexcept:
    """The value of digits s[start:end] in base 10 or 16: at most 19 or 16 of them, it fits."""
    cdef unsigned long long value = 0
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(start, end):
        c = s[i]
        value = value * base + (c - c'0' if c <= c'9' else c - c'a' + 10)
    return value


cdef unsigned long long pointer(const unsigned char *s, KmemLine *line) noexcept:
    """A %p value: hex digits, ``(null)`` is 0."""
    if s[line.ptr_start] == c'(':
        return 0
    return number(s, line.ptr_start, line.ptr_end, 16)


cdef inline bytes span(const unsigned char *s, Py_ssize_t start, Py_ssize_t end):
    return PyBytes_FromStringAndSize(<const char *>s + start, end - start)


cdef enum:
    SPAN_CACHE_SIZE = 1024          # a power of two


cdef class SpanCache:
    """The values of spans of text (tasks, call sites, cache names: their indexes in the
    reader's tables), direct-mapped by a hash of the span's bytes, in front of a dict: a hit
    makes no bytes object and looks up no dict."""

    cdef list keys, values
    cdef dict known                 # the reader's dict: bytes -> value
    cdef object decode              # the reader's method that fills it on a miss

    def __init__(self, dict known, decode):
        self.keys = [None] * SPAN_CACHE_SIZE
        self.values = [None] * SPAN_CACHE_SIZE
        self.known = known
        self.decode = decode

    cdef object get(self, const unsigned char *s, Py_ssize_t start, Py_ssize_t end):
        """``known.get(raw)``, else ``decode(raw)``, of the bytes s[start:end]."""
        cdef Py_ssize_t length = end - start, i
        cdef unsigned int h = 2166136261u           # FNV-1a
        cdef bytes key
        for i in range(start, end):
            h = (h ^ s[i]) * 16777619u
        slot = h & (SPAN_CACHE_SIZE - 1)
        key = <bytes>self.keys[slot]
        if key is not None and PyBytes_GET_SIZE(key) == length and \
                memcmp(PyBytes_AS_STRING(key), s + start, length) == 0:
            return self.values[slot]
        key = span(s, start, end)
        value = self.known.get(key)
        if value is None:
            value = self.decode(key)
        self.keys[slot] = key
        self.values[slot] = value
        return value



cdef inline int32_t intern_in(dict index_of, list table, object key) except -1:
    """The index of key in a table the reader shares between batches, appended if new."""
    index = index_of.get(key)
    if index is None:
        index = index_of[key] = len(table)
        table.append(key)
    return index


cdef class BlockScanner:
    """A TraceReader's ``_block`` in C: ``scanner(block, lineno)`` gives what
    ``reader._block(block, lineno)`` gives, with the same effects on the reader, the events
    as an ``ftrace.EventBatch``."""

    cdef object reader
    cdef SpanCache tasks, strings
    cdef list strings_table, tasks_table       # the reader's: index -> str, (comm, pid)
    cdef dict string_index, task_index         # str -> index, (comm, pid) -> index
    cdef int32_t no_call_site                  # the index of "" (page events'), once made

    def __init__(self, reader):
        self.reader = reader
        self.strings_table = reader.strings_table
        self.tasks_table = reader.tasks_table
        self.string_index = {s: i for i, s in enumerate(self.strings_table)}
        self.task_index = {t: i for i, t in enumerate(self.tasks_table)}
        self.tasks = SpanCache({}, self.raw_task)
        self.strings = SpanCache({}, self.raw_string)
        self.no_call_site = -1

    cdef int32_t intern(self, str text) except -1:
        """The index of a string in the reader's table, added if new."""
        return intern_in(self.string_index, self.strings_table, text)

    cdef int32_t intern_task(self, tuple task) except -1:
        """The index of a (comm, pid) in the reader's table, added if new."""
        return intern_in(self.task_index, self.tasks_table, task)

    def raw_string(self, bytes raw):
        """A call site's or cache name's index, from its bytes (the span cache's miss)."""
        index = self.strings.known[raw] = self.intern(
            self.reader._strings.get(raw) or self.reader._string(raw))
        return index

    def raw_task(self, bytes raw):
        """A ``comm-pid`` task prefix's index, from its bytes (the span cache's miss)."""
        index = self.tasks.known[raw] = self.intern_task(
            self.reader._tasks.get(raw) or self.reader._task(raw))
        return index

    def __call__(self, bytes block, Py_ssize_t lineno):
        """The events of a block of lines, as ``TraceReader._block``: (events, the last line's
        number, the TraceError that stopped the block or None)."""
        cdef const unsigned char *text = <const unsigned char *>PyBytes_AS_STRING(block)
        cdef const unsigned char *s
        cdef const unsigned char *newline
        cdef Py_ssize_t size = PyBytes_GET_SIZE(block), start = 0, n, k, kind, nr_lines = 0
        cdef Py_ssize_t counts[MAX_EVENTS]       # replayed events by tracepoint, this block,
        cdef int counted[MAX_EVENTS]             # counted in the order first seen
        cdef int nr_counted = 0
        cdef KmemLine line
        cdef object reader = self.reader
        cdef bint seen = reader._seen_event
        cdef bint sampling = len(reader._ptr_sample) < reader.HASH_SAMPLE
        cdef SpanCache tasks = self.tasks, strings = self.strings
        cdef dict others = {}                    # other events by tracepoint, this block
        cdef object error = None
        cdef Py_ssize_t e = 0                    # events so far
        # The columns, as long as the block has lines (no line holds two events).
        newline = text
        while True:
            newline = <const unsigned char *>memchr(newline, c'\n', size - (newline - text))
            if newline == NULL:
                break
            nr_lines += 1
            newline += 1
        columns = [np.empty(nr_lines, dtype) for _, dtype in ftrace.EVENT_COLUMNS]
        cdef int64_t[::1] line_col = columns[0]
        cdef int8_t[::1] kind_col = columns[1]
        cdef uint64_t[::1] ptr_col = columns[2], pfn_col = columns[3], order_col = columns[4]
        cdef uint64_t[::1] req_col = columns[5], size_col = columns[6]
        cdef int32_t[::1] call_site_col = columns[7], name_col = columns[8]
        cdef int32_t[::1] task_col = columns[9]
        for k in range(NR_EVENTS):
            counts[k] = 0
        while start < size:
            newline = <const unsigned char *>memchr(text + start, c'\n', size - start)
            if newline == NULL:
                break
            s = text + start
            n = newline - s
            start += n + 1
            lineno += 1
            if not read_common_line(s, n, &line):
                if n == 0 or s[0] == c'#' or skip_ws(s, 0, n) == n:
                    continue                # blank lines and comments
                reader._seen_event = seen   # anything else, line by line
                flush_counts(reader, counts, counted, nr_counted, others)
                nr_counted, others = 0, {}
                try:
                    ev = reader._line(span(s, 0, n), lineno)
                except TraceError as err:
                    error = err
                    break
                seen = reader._seen_event
                if ev is not None:
                    line_col[e] = ev.line
                    kind_col[e] = ev.kind
                    ptr_col[e] = ev.ptr
                    pfn_col[e] = ev.pfn if ev.kind >= PAGE_ALLOC else 0
                    order_col[e] = ev.order
                    req_col[e] = ev.bytes_req
                    size_col[e] = ev.bytes_alloc
                    call_site_col[e] = self.intern(ev.call_site)
                    name_col[e] = -1 if ev.name is None else self.intern(ev.name)
                    task_col[e] = self.intern_task((ev.comm, ev.pid))
                    e += 1
                sampling = len(reader._ptr_sample) < reader.HASH_SAMPLE
                continue
            seen = True
            if line.event < 0:              # another event: counted
                name = span(s, line.name_start, line.name_end)
                others[name] = others.get(name, 0) + 1
                continue
            kind = EVENT_KIND[line.event]
            if kind <= KMEM_CACHE_ALLOC and sampling:
                try:
                    reader._check_hashing(span(s, line.ptr_start, line.ptr_end))
                except TraceError as err:
                    error = err
                    break
                sampling = len(reader._ptr_sample) < reader.HASH_SAMPLE
            line_col[e] = lineno
            kind_col[e] = kind
            task_col[e] = tasks.get(s, line.task_start, line.task_end)
            name_col[e] = -1
            if kind >= PAGE_ALLOC:
                ptr_col[e] = 0
                if line.first_end - line.first_start > 1 and s[line.first_start + 1] == c'x':
                    pfn_col[e] = number(s, line.first_start + 2, line.first_end, 16)
                else:
                    pfn_col[e] = number(s, line.first_start, line.first_end, 10)
                order_col[e] = number(s, line.second_start, line.second_end, 10)
                req_col[e] = size_col[e] = 0
                if self.no_call_site < 0:
                    self.no_call_site = self.intern("")
                call_site_col[e] = self.no_call_site
            else:
                call_site_col[e] = strings.get(s, line.call_site_start, line.call_site_end)
                ptr_col[e] = pointer(s, &line)
                pfn_col[e] = order_col[e] = 0
                if kind <= KMEM_CACHE_ALLOC:
                    req_col[e] = number(s, line.first_start, line.first_end, 10)
                    size_col[e] = number(s, line.second_start, line.second_end, 10)
                else:
                    req_col[e] = size_col[e] = 0
                    if line.cache_end > line.cache_start:
                        name_col[e] = strings.get(s, line.cache_start, line.cache_end)
            e += 1
            if counts[line.event] == 0:
                counted[nr_counted] = line.event
                nr_counted += 1
            counts[line.event] += 1
        reader._seen_event = seen
        flush_counts(reader, counts, counted, nr_counted, others)
        events = ftrace.EventBatch([column[:e] for column in columns], self.strings_table,
                                   self.tasks_table)
        return events, lineno, error


cdef void flush_counts(reader, Py_ssize_t *counts, int *counted, int nr_counted,
                       dict others) except *:
    """The block's counts into reader.stats (reader._count), in the order first seen."""
    cdef dict by_name = {}
    cdef int k
    for k in range(nr_counted):
        by_name[EVENT_NAMES[counted[k]]] = counts[counted[k]]
        counts[counted[k]] = 0
    reader._count(by_name, others)

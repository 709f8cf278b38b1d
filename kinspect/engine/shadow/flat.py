"""The flat shadow of mainline generic KASAN: shadow = (addr >> 3) + KASAN_SHADOW_OFFSET.

The reference scheme. The whole shadow region is reserved at boot (1/8 of the covered memory);
the simulator stores it sparsely, in chunks created on first touch, so a 1 TB profile costs
nothing until used.
"""

from __future__ import annotations

from collections.abc import Callable

from ..kasan import KASAN_SHADOW_SCALE_SHIFT
from .base import Footprint, ShadowScheme

CHUNK_SHIFT = 21                          # one chunk shadows 2 MiB of memory
CHUNK_GRANULES = 1 << (CHUNK_SHIFT - KASAN_SHADOW_SCALE_SHIFT)
assert (CHUNK_SHIFT, CHUNK_GRANULES) == (21, 0x40000)   # spelled out in write(), the hot path
_FILL = [bytes([v]) for v in range(256)]


class FlatShadow(ShadowScheme):
    """Byte-per-granule shadow, as mm/kasan/generic.c sees it.

    ``initial_byte(addr)`` gives the boot-time shadow of a chunk's memory (the machine knows
    which ranges are free RAM, kernel image, vmalloc space...).
    """

    name = "flat"

    def __init__(self, initial_byte: Callable[[int], int], static_bytes: int,
                 virtual_range_bytes: int) -> None:
        self._initial_byte = initial_byte
        self._chunks: dict[int, bytearray] = {}
        self._static_bytes = static_bytes
        self._virtual_range_bytes = virtual_range_bytes

    def _chunk(self, key: int) -> bytearray:
        chunk = self._chunks.get(key)
        if chunk is None:
            chunk = bytearray(_FILL[self._initial_byte(key << CHUNK_SHIFT)] * CHUNK_GRANULES)
            self._chunks[key] = chunk
        return chunk

    def poison(self, addr: int, size: int, value: int) -> None:
        granules = size >> KASAN_SHADOW_SCALE_SHIFT
        chunk = self._chunks.get(addr >> CHUNK_SHIFT)
        start = (addr >> KASAN_SHADOW_SCALE_SHIFT) & (CHUNK_GRANULES - 1)
        if chunk is not None and start + granules <= CHUNK_GRANULES:
            chunk[start:start + granules] = _FILL[value] * granules
            return
        while granules > 0:
            key = addr >> CHUNK_SHIFT
            chunk = self._chunks.get(key) or self._chunk(key)
            start = (addr >> KASAN_SHADOW_SCALE_SHIFT) & (CHUNK_GRANULES - 1)
            n = min(granules, CHUNK_GRANULES - start)
            chunk[start:start + n] = _FILL[value] * n
            granules -= n
            addr += n << KASAN_SHADOW_SCALE_SHIFT

    def write(self, addr: int, data: bytes) -> None:
        chunk = self._chunks.get(addr >> 21)                  # CHUNK_SHIFT
        start = (addr >> 3) & 0x3FFFF                         # granule index in the chunk
        end = start + len(data)
        if chunk is not None and end <= 0x40000:              # CHUNK_GRANULES
            chunk[start:end] = data
            return
        n = len(data)
        done = 0
        while done < n:
            key = addr >> CHUNK_SHIFT
            chunk = self._chunks.get(key) or self._chunk(key)
            start = (addr >> KASAN_SHADOW_SCALE_SHIFT) & (CHUNK_GRANULES - 1)
            k = min(n - done, CHUNK_GRANULES - start)
            chunk[start:start + k] = data[done:done + k]
            done += k
            addr += k << KASAN_SHADOW_SCALE_SHIFT

    def set_byte(self, addr: int, value: int) -> None:
        key = addr >> CHUNK_SHIFT
        chunk = self._chunks.get(key) or self._chunk(key)
        chunk[(addr >> KASAN_SHADOW_SCALE_SHIFT) & (CHUNK_GRANULES - 1)] = value

    def shadow_byte(self, addr: int) -> int:
        chunk = self._chunks.get(addr >> CHUNK_SHIFT)
        if chunk is None:
            return self._initial_byte(addr)
        return chunk[(addr >> KASAN_SHADOW_SCALE_SHIFT) & (CHUNK_GRANULES - 1)]

    def read(self, addr: int, size: int) -> bytes:
        out = bytearray()
        granules = size >> KASAN_SHADOW_SCALE_SHIFT
        while granules > 0:
            key = addr >> CHUNK_SHIFT
            start = (addr >> KASAN_SHADOW_SCALE_SHIFT) & (CHUNK_GRANULES - 1)
            n = min(granules, CHUNK_GRANULES - start)
            chunk = self._chunks.get(key)
            if chunk is None:
                out += _FILL[self._initial_byte(addr)] * n
            else:
                out += chunk[start:start + n]
            granules -= n
            addr += n << KASAN_SHADOW_SCALE_SHIFT
        return bytes(out)

    def footprint(self) -> Footprint:
        return Footprint(static_bytes=self._static_bytes,
                         virtual_range_bytes=self._virtual_range_bytes)

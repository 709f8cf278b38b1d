"""Real kernel memory: an x86_64 crash dump (ELF core) read with its vmlinux.

:mod:`.core` maps the ELF core (PT_LOAD segments, notes), :mod:`.pagetable` walks the page
tables, :mod:`.types` reads struct layouts from DWARF, :mod:`.kernel` pairs a dump with its
vmlinux, :mod:`.printk` reads the printk ring buffer, :mod:`.command` is ``kinspect vmcore``.
"""

from .core import ElfCore, VmcoreError
from .kernel import Kernel, open_kernel

__all__ = ["ElfCore", "VmcoreError", "Kernel", "open_kernel"]

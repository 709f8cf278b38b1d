"""Shadow schemes, by name: ``flat`` (mainline), and the 2017 per-page designs."""

from __future__ import annotations

from importlib import import_module

from ..errors import KinspectError

# name -> (module, class, one line for --help and tables)
SCHEMES: dict[str, tuple[str, str, str]] = {
    "flat": ("flat", "FlatShadow", "mainline generic KASAN: 1/8 of memory, one contiguous range"),
    "pshadow": ("pshadow", "PerPageShadow", "Kim 2017: a byte per page, on-demand shadow pages"),
    "pageptr": ("pageptr", "PagePtrShadow", "Vyukov 2017: slab shadow blocks, page->shadow"),
    "pageext": ("pageext", "PageExtShadow", "Murzin 2017: the same blocks, via page_ext"),
}


def scheme_class(name: str):
    """The class of a scheme, by name (``KinspectError`` for an unknown one)."""
    try:
        module, cls, _ = SCHEMES[name]
    except KeyError:
        raise KinspectError(
            f"unknown shadow scheme {name!r} (known: {', '.join(SCHEMES)})", "--scheme"
        ) from None
    return getattr(import_module(f"{__name__}.{module}"), cls)

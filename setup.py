"""The compiled core's build (issue 12): the Cython extensions under kinspect/engine.

Everything else about the package is in pyproject.toml; this file only lists the extension
modules (docs/engine.md). Each is optional: without a C compiler the build goes on without
it, and kinspect runs on its Python engine (kinspect/engine/native.py says so).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "embedsignature": True,
}

EXTENSIONS = cythonize(
    [
        Extension(
            f"kinspect.engine.{name}", [f"kinspect/engine/{name}.pyx"], extra_compile_args=["-O2"]
        )
        for name in (
            "_ftrace_scan",
            "_buddy",
            "_page_alloc",
            "_slab",
            "_replay",
            "_schemes",
            "_runner",
        )
    ],
    compiler_directives=COMPILER_DIRECTIVES,
)
for extension in EXTENSIONS:
    extension.optional = True  # cythonize() does not keep an Extension's optional

setup(ext_modules=EXTENSIONS)

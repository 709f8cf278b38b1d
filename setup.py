"""The compiled core's build (issue 12): the Cython extensions under kinspect/engine.

Everything else about the package is in pyproject.toml; this file only builds the extension
modules: every .pyx under kinspect/engine (docs/engine.md). Each is optional: without a C
compiler the build goes on without it, and kinspect runs on its Python engine
(kinspect/engine/native.py says so).
"""

from pathlib import Path

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
        # every .pyx of the engine (kinspect/engine/native.py COMPILED names what it loads)
        for name in sorted(path.stem for path in Path("kinspect/engine").glob("*.pyx"))
    ],
    compiler_directives=COMPILER_DIRECTIVES,
)
for extension in EXTENSIONS:
    extension.optional = True  # cythonize() does not keep an Extension's optional

setup(ext_modules=EXTENSIONS)

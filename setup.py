"""Build the compiled core.

Cython directives are set here, once.  ``NASFLOPS_DEBUG=1`` at build time
turns bounds checks, wraparound and zero-division checks back on, for
chasing a crash in the core: ``NASFLOPS_DEBUG=1 pip install -e .``.
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("NASFLOPS_DEBUG", "0") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "cdivision": not DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": DEBUG,
}

extensions = [
    Extension(
        name,
        [source],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    )
    for name, source in (
        ("nasflops._core", "nasflops/_core.pyx"),                            # the scoring core
        ("nasflops.search_spaces._gather", "search_spaces/_gather.pyx"),  # template gather
        ("nasflops.search_spaces._dist", "search_spaces/_dist.pyx"),      # tables, exact profiles
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))

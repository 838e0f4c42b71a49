"""Import SciPy's parts used here without the NumPy submodules SciPy's array-API layer drags in.

``scipy._lib.array_api_compat.numpy`` clones NumPy's namespace (``from numpy import *`` plus every name in
``dir(numpy)``), and NumPy loads its submodules lazily on first attribute access: the clone imports
``numpy.f2py`` (with argparse, charset_normalizer), ``numpy.testing`` (unittest, pydoc), ``numpy.ma``,
``numpy.polynomial`` and ``numpy.ctypeslib``, ~7 MB resident that nothing in the daemon uses. Hiding those names
while SciPy loads keeps them unloaded; NumPy still loads any of them if something asks (``np.ma`` works).
If SciPy was already imported (or NumPy changes its lazy-loading), this does nothing.

LAPACK's banded solver (`dgbsv`, for the CUSUM's run lengths) is taken from its extension module
(``scipy/linalg/_flapack*.so``), loaded by file: importing ``scipy.linalg.lapack`` runs ``scipy.linalg``'s
``__init__``, which loads BLAS's wrappers, the decompositions, matrix functions and Cython helpers, 5 MB resident
for one function. The module is loaded under its own name, as `scipy.linalg` would load it, and a later
``import scipy.linalg`` (the CLI's refusal training) still works as usual.

The drift modules take every SciPy name they use from here, so SciPy is always loaded this way, whichever module
comes first, and nothing that only reads the drift settings (`check-config`, the CLI) loads SciPy at all.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

import numpy

_UNUSED = ("f2py", "testing", "ma", "polynomial", "ctypeslib", "core", "char", "rec", "strings")


def _load() -> None:
    if "scipy" in sys.modules:
        return
    hidden = {n for n in _UNUSED if f"numpy.{n}" not in sys.modules}
    saved_all = numpy.__all__
    saved_dir = numpy.__dict__.get("__dir__")
    numpy.__all__ = [n for n in saved_all if n not in hidden]
    if saved_dir is not None:
        numpy.__dir__ = lambda: [n for n in saved_dir() if n not in hidden]  # type: ignore[method-assign]
    try:
        import scipy.special  # noqa: F401
    finally:
        numpy.__all__ = saved_all
        if saved_dir is not None:
            numpy.__dir__ = saved_dir  # type: ignore[method-assign]


def _dgbsv() -> Any:
    """LAPACK's `dgbsv`, from `scipy.linalg` if it is loaded already, else from its extension module alone."""
    name = "scipy.linalg._flapack"
    loaded = sys.modules.get(name)
    if loaded is None and "scipy.linalg" not in sys.modules:
        import scipy

        folder = Path(scipy.__file__).parent / "linalg"
        # the file the import system would pick: the first of this interpreter's extension suffixes present
        files = [folder / f"_flapack{suffix}" for suffix in EXTENSION_SUFFIXES if (folder / f"_flapack{suffix}").is_file()]
        spec = importlib.util.spec_from_file_location(name, files[0]) if files else None
        if spec is not None and spec.loader is not None:
            loaded = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(loaded)
    if loaded is None:  # an unusual layout: the ordinary import
        from scipy.linalg.lapack import dgbsv as found

        return found
    return loaded.dgbsv


_load()

from scipy import sparse  # noqa: E402

dgbsv = _dgbsv()
from scipy.special import (  # noqa: E402
    betaincinv,
    betaln,
    chdtrc,
    expit,
    gammaincc,
    gammaln,
    kolmogorov,
    logit,
    ndtr,
    ndtri,
)

__all__ = ["betaincinv", "betaln", "chdtrc", "dgbsv", "expit", "gammaincc", "gammaln", "kolmogorov", "logit", "ndtr",
           "ndtri", "sparse"]

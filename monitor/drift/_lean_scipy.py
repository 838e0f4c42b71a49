"""Import SciPy's parts used here without the NumPy submodules SciPy's array-API layer drags in.

``scipy._lib.array_api_compat.numpy`` clones NumPy's namespace (``from numpy import *`` plus every name in
``dir(numpy)``), and NumPy loads its submodules lazily on first attribute access: the clone imports
``numpy.f2py`` (with argparse, charset_normalizer), ``numpy.testing`` (unittest, pydoc), ``numpy.ma``,
``numpy.polynomial`` and ``numpy.ctypeslib``, ~7 MB resident that nothing in the daemon uses. Hiding those names
while SciPy loads keeps them unloaded; NumPy still loads any of them if something asks (``np.ma`` works).
If SciPy was already imported (or NumPy changes its lazy-loading), this does nothing.

The drift modules take every SciPy name they use from here, so SciPy is always loaded this way, whichever module
comes first, and nothing that only reads the drift settings (`check-config`, the CLI) loads SciPy at all.
"""

from __future__ import annotations

import sys

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
        import scipy.linalg.lapack  # noqa: F401
        import scipy.special  # noqa: F401
    finally:
        numpy.__all__ = saved_all
        if saved_dir is not None:
            numpy.__dir__ = saved_dir  # type: ignore[method-assign]


_load()

from scipy import sparse  # noqa: E402
from scipy.linalg.lapack import dgbsv  # noqa: E402
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

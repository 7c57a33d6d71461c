"""The math kernel family: convolution, matrix products, pooling, normalisation, element-wise
arithmetic/logic, unary math, activations, softmax, reductions.

Importing this package registers every kernel in it (each module registers its own with the
``@kernel`` decorator at import time).
"""

from __future__ import annotations

from . import activations as _activations  # noqa: F401  (registers kernels)
from . import arg_cumsum as _arg_cumsum  # noqa: F401
from . import binary as _binary  # noqa: F401
from . import conv as _conv  # noqa: F401
from . import conv_transpose as _conv_transpose  # noqa: F401
from . import logical as _logical  # noqa: F401
from . import matmul as _matmul  # noqa: F401
from . import normalization as _normalization  # noqa: F401
from . import pool as _pool  # noqa: F401
from . import pool_global as _pool_global  # noqa: F401
from . import quantized as _quantized  # noqa: F401
from . import reduce as _reduce  # noqa: F401
from . import softmax as _softmax  # noqa: F401
from . import unary as _unary  # noqa: F401

"""``python -m aioplug.serve MODEL_OR_REPOSITORY``: the ``aioplug serve`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())

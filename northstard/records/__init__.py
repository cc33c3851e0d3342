"""Stable import path for plugins: ``northstard.core.records`` is ``northstard.core.records``.

Its public names (``__all__``), re-exported so that plugins outside this
repository keep working; code inside northstard imports ``northstard.core.records``.
"""

from northstard.core.records import *  # noqa: F403
from northstard.core.records import __all__ as __all__

"""Stable import path for plugins: ``northstard.core.money`` is ``northstard.core.money``.

Its public names (``__all__``), re-exported so that plugins outside this
repository keep working; code inside northstard imports ``northstard.core.money``.
"""

from northstard.core.money import *  # noqa: F403
from northstard.core.money import __all__ as __all__

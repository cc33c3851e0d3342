"""Stable import path for plugins: ``northstard.actors.source`` is ``northstard.actors.source``.

Its public names (``__all__``), re-exported so that plugins outside this
repository keep working; code inside northstard imports ``northstard.actors.source``.
"""

from northstard.actors.source import *  # noqa: F403
from northstard.actors.source import __all__ as __all__

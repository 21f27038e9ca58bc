"""Moved to :mod:`llmops.stats`, a leaf module; this name stays so that existing imports keep working.

New code imports :mod:`llmops.stats` (or :mod:`llmops.regression`, which re-exports it): this
module loads the whole regression package first.
"""

from llmops.stats import *  # noqa: F403
from llmops.stats import __all__ as __all__

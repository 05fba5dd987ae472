"""Old path of ``bnsearch.compare.stats``, kept so that existing notebooks keep working."""

from bnsearch.compare.stats import *  # noqa: F403

"""Old path of ``bnsearch.report.figures``, kept so that existing notebooks keep working."""

from bnsearch.report.figures import *  # noqa: F403

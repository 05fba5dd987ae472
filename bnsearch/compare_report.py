"""Old path of ``bnsearch.compare.html``, kept so that existing notebooks keep working."""

from bnsearch.compare.html import *  # noqa: F403

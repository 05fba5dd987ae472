"""URLs as they may be shown: passwords masked before a URL is printed, logged or stored."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^:/@]*):[^/]*@")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (SQLAlchemy's own rendering).

    Works for storage URLs (``postgresql+psycopg://user:pw@host/db``) and tracking URLs
    (``http://user:pw@host:5000``); strings that are not URLs (paths) come back unchanged.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return _USERINFO.sub(r"\g<head>:***@", url)
    if parsed.host and "@" in parsed.host:
        # An unencoded "@" in the password: SQLAlchemy splits at the first "@", so the rest
        # of the password would be shown as part of the host.
        return _USERINFO.sub(r"\g<head>:***@", url)
    return parsed.render_as_string(hide_password=True)

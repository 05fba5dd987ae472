"""Storage URLs: which file a SQLite or journal URL names, and which URLs bnsearch accepts."""

from __future__ import annotations

from pathlib import Path

from bnsearch.errors import StudyError
from bnsearch.urls import mask_url

JOURNAL_SCHEME = "journal"  # journal:///path.log: Optuna's JournalStorage on a file
_SCHEMES = ("sqlite", JOURNAL_SCHEME, "postgresql", "mysql")


def _file_url_path(url: str, scheme: str) -> Path | None:
    """The file of a ``<scheme>:///relative`` or ``<scheme>:////absolute`` URL, else None."""
    if not url.startswith(f"{scheme}:"):
        return None
    rest = url[len(scheme) + 1 :]
    if not rest.startswith("///") or rest[3:] in ("", ":memory:"):
        return None
    return Path(rest[3:])


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, or None for other schemes and in-memory SQLite."""
    return _file_url_path(url, "sqlite")


def journal_path(url: str) -> Path | None:
    """The file of a ``journal:///`` URL (an Optuna journal file), or None for other schemes."""
    return _file_url_path(url, JOURNAL_SCHEME)


def check_url(url: str) -> None:
    """Refuse a URL of a scheme bnsearch does not open, or a malformed SQLite or journal URL."""
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    if scheme not in _SCHEMES:
        raise StudyError(
            f"unsupported storage URL '{mask_url(url)}'; use sqlite:///path/to/file.db, "
            "journal:///path/to/file.log or postgresql+psycopg://user:password@host/dbname"
        )
    # sqlite:/// alone is in-memory SQLite (Optuna accepts it); a journal needs a file.
    if scheme == "sqlite" and not url.startswith("sqlite:///"):
        raise StudyError(
            f"bad SQLite URL '{mask_url(url)}'; write it as sqlite:///relative/path.db or sqlite:////abs/path.db"
        )
    if scheme == JOURNAL_SCHEME and journal_path(url) is None:
        raise StudyError(
            f"bad journal URL '{mask_url(url)}'; write it as journal:///relative/path.log or journal:////abs/path.log"
        )


def storage_file(url: str) -> Path | None:
    """The local file behind a SQLite or journal URL; None for a database server."""
    return sqlite_path(url) or journal_path(url)

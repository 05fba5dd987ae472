"""Errors the library raises for bad input; the CLI (``cli.app.user_errors``) prints them as one line."""

from __future__ import annotations


class BnsearchError(Exception):
    """Base class: something the user can fix (bad option, bad file, bad storage)."""


class ConfigError(BnsearchError):
    """A run option is invalid (unknown strategy, non-positive trial count, ...)."""


class SpaceError(BnsearchError):
    """A search-space file is malformed or describes an invalid space."""


class DataError(BnsearchError):
    """A dataset is unknown, unreadable or inconsistent."""


class StudyError(BnsearchError):
    """A storage or study problem: bad URL, unreachable database, mismatched resume."""


class MissingDependencyError(BnsearchError):
    """An optional package needed for this feature is not installed."""

    def __init__(self, package: str, feature: str) -> None:
        super().__init__(f"{feature} needs the package '{package}'; install it with: pip install {package}")


class ModelError(BnsearchError):
    """A saved model folder, or the images given to it, cannot be used."""

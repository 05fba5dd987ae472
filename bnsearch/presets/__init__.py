"""Named presets for ``bnsearch run --preset NAME``: run settings plus a space file.

A preset is ``bnsearch/presets/<name>.toml`` with a ``[run]`` table (dataset, strategy,
pruner, trials, epochs, threads, study_name, and ``space``: a space file next to it).
Options given on the command line override the preset's values, which override the
built-in defaults.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bnsearch.errors import ConfigError

_RUN_KEYS = ("dataset", "strategy", "pruner", "trials", "epochs", "study_name", "space", "threads")


@dataclass(frozen=True, slots=True, kw_only=True)
class Preset:
    name: str
    run: dict[str, Any]  # option name → value; ``space`` is an absolute path


def _folder() -> Path:
    # Presets ship inside the package (package data); a zip install is not supported.
    return Path(str(resources.files("bnsearch") / "presets"))


def preset_names() -> list[str]:
    return sorted(p.stem for p in _folder().glob("*.toml") if not p.name.endswith(".space.toml"))


def load_preset(name: str) -> Preset:
    """Read preset ``name``.

    Raises:
        ConfigError: no such preset, or its file is malformed.
    """
    path = _folder() / f"{name}.toml"
    if name not in preset_names():
        raise ConfigError(f"unknown preset '{name}'; choose one of: {', '.join(preset_names())}")
    try:
        run = dict(tomllib.loads(path.read_text(encoding="utf-8")).get("run", {}))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"preset file {path} is not valid TOML: {e}") from None
    unknown = sorted(set(run) - set(_RUN_KEYS))
    if unknown:
        raise ConfigError(f"preset {name}: unknown key '{unknown[0]}'; known keys: {', '.join(_RUN_KEYS)}")
    if "space" in run:
        run["space"] = str(path.parent / str(run["space"]))
    return Preset(name=name, run=run)


def resolve(preset: str | None, defaults: dict[str, Any], **given: Any) -> dict[str, Any]:
    """Each option: the value given on the command line, else the preset's, else the default.

    Args:
        preset: Preset name or None.
        defaults: Built-in defaults of the options that are None in ``given``.
        given: The command-line values (None = not given).
    """
    from_preset = load_preset(preset).run if preset else {}
    out = {}
    for name, value in given.items():
        if value is not None:
            out[name] = value
        elif name in from_preset:
            out[name] = from_preset[name]
        else:
            out[name] = defaults.get(name)
    return out

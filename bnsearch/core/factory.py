"""``--model package.module:function`` (or ``path/to/file.py:function``): the user's own network.

The function is called as ``function(params, in_shape, num_classes)`` with the trial's
``TrialParams`` (the space file's extra parameters in ``params.extra``), the ``(channels,
height, width)`` of one image and the number of classes, and returns an ``nn.Module`` that
maps a batch ``(N, C, H, W)`` to logits ``(N, num_classes)``.

``load_factory`` imports it once per process and fingerprints the source file it lives in (part
of the study's identity: an edited factory is another model); ``check_factory`` builds it once
and runs a dummy batch through it, so every way a factory can be wrong is one ``ConfigError``
before a study is created.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bnsearch.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from bnsearch.core.space import TrialParams

FactoryFn = Callable[["TrialParams", tuple[int, int, int], int], "nn.Module"]


@dataclass(frozen=True, slots=True)
class Factory:
    """A user's network factory, imported."""

    ref: str  # as given to --model: "package.module:function" or "path/file.py:function"
    fn: FactoryFn  # the function
    fingerprint: str  # sha256 (16 hex digits) of the source file that defines it

    @property
    def label(self) -> str:
        """The function's name, for a default study name."""
        return self.ref.rsplit(":", 1)[1]


def _split(ref: str) -> tuple[str, str]:
    where, _, name = ref.strip().rpartition(":")
    if not where or not name.isidentifier():
        raise ConfigError(
            f"--model must be bncnn, plain, resnet, package.module:function or path/file.py:function, got '{ref}'"
        )
    return where, name


def load_factory(ref: str) -> Factory:
    """Import the factory ``ref`` names (once per process, again if its file changed) and
    fingerprint its source.

    A dotted module is imported as Python would, with the current folder on the import path
    (as ``uvicorn module:app`` does); a path ending in ``.py`` is loaded from that file.

    Raises:
        ConfigError: the reference is malformed, the module cannot be imported, it has no such
            attribute, or the attribute is not callable.
    """
    where, _ = _split(ref)
    stamp: tuple[str, int, int] | None = None
    if _is_path(where) and Path(where).is_file():
        st = Path(where).stat()
        stamp = (str(Path(where).resolve()), st.st_mtime_ns, st.st_size)
    return _load(ref, stamp)


def _is_path(where: str) -> bool:
    return where.endswith(".py") or os.sep in where or "/" in where


@functools.cache
def _load(ref: str, stamp: tuple[str, int, int] | None) -> Factory:
    where, name = _split(ref)
    try:
        if _is_path(where):
            module = _load_file(Path(where))
        else:
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(where)
    except ConfigError:
        raise
    except Exception as e:  # an import runs the user's code: any exception means "cannot import"
        raise ConfigError(f"--model {ref}: cannot import {where}: {type(e).__name__}: {_first_line(e)}") from None
    if not hasattr(module, name):
        raise ConfigError(f"--model {ref}: {where} has no attribute '{name}'")
    fn = getattr(module, name)
    if not callable(fn):
        raise ConfigError(f"--model {ref}: {where}.{name} is a {type(fn).__name__}, not a function")
    return Factory(ref=ref.strip(), fn=fn, fingerprint=_fingerprint(module, fn))


def _load_file(path: Path) -> object:
    if not path.is_file():
        raise ConfigError(f"--model {path}: no such file")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    mod_name = f"bnsearch_user_model_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"--model {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[mod_name]
        raise
    return module


def _fingerprint(module: object, fn: object) -> str:
    try:
        source = Path(inspect.getsourcefile(fn) or getattr(module, "__file__", "") or "").read_bytes()  # type: ignore[arg-type]
    except (OSError, TypeError):
        try:
            source = inspect.getsource(fn).encode()  # type: ignore[arg-type]
        except (OSError, TypeError):
            source = repr(fn).encode()
    return hashlib.sha256(source).hexdigest()[:16]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def call_factory(factory: Factory, params: TrialParams, in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The network the factory builds for ``params``.

    Raises:
        ConfigError: the factory raised, or returned something that is not an ``nn.Module``.
    """
    from torch import nn

    try:
        model = factory.fn(params, tuple(in_shape), num_classes)  # type: ignore[arg-type]
    except Exception as e:
        raise ConfigError(f"--model {factory.ref} raised {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--model {factory.ref} returned a {type(model).__name__}, expected a torch.nn.Module")
    return model


def check_factory(factory: Factory, params: TrialParams, in_shape: tuple[int, int, int], num_classes: int) -> None:
    """Build the factory's net for ``params`` and run a batch of two zero images through it.

    Raises:
        ConfigError: the factory or the forward pass raised, it returned no ``nn.Module``, or
            the output is not ``(2, num_classes)``.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        model = call_factory(factory, params, in_shape, num_classes)
        x = torch.zeros(2, *in_shape)
        try:
            with torch.no_grad():
                out = model(x)
        except Exception as e:
            raise ConfigError(
                f"--model {factory.ref}: the network failed on a batch of shape {tuple(x.shape)}: "
                f"{type(e).__name__}: {_first_line(e)}"
            ) from None
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (2, num_classes):
        raise ConfigError(
            f"--model {factory.ref}: the network maps a batch of shape {tuple(x.shape)} to {shape}; "
            f"expected {(2, num_classes)} (one logit per class)"
        )

"""Optuna glue shared by bnsearch's samplers: distributions → domains, seeded per-trial draws."""

from __future__ import annotations

import secrets
import zlib
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from bnsearch.samplers._moves import CategoricalDomain, Domain, NumericDomain, sample_uniform


def domain_of(dist: BaseDistribution) -> Domain:
    """The ``_moves`` domain of an Optuna distribution."""
    if isinstance(dist, CategoricalDistribution):
        return CategoricalDomain(tuple(dist.choices))
    if isinstance(dist, IntDistribution):
        return NumericDomain(low=dist.low, high=dist.high, log=dist.log, step=dist.step, integer=True)
    if isinstance(dist, FloatDistribution):
        return NumericDomain(low=dist.low, high=dist.high, log=dist.log, step=dist.step)
    raise TypeError(f"unsupported distribution {dist!r}")


def trial_rng(seed: int, number: int, purpose: str) -> np.random.Generator:
    """A generator for one purpose of one trial: independent of call order and of threads."""
    return np.random.default_rng([seed, number, zlib.crc32(purpose.encode())])


def sample_random(dist: BaseDistribution, rng: np.random.Generator) -> Any:
    """A uniform draw from ``dist`` (log params uniform in log space), as a Python scalar."""
    return sample_uniform(domain_of(dist), rng)


class LazySeed:
    """A sampler's base seed: the one given, or drawn at first use; ``reseed_rng`` draws anew.

    Every random draw derives from this seed and the trial number (``trial_rng``), so a
    sampler copied by ``n_jobs>1`` and reseeded gets a fresh stream, not a clone.
    """

    _seed: int | None

    def reseed_rng(self) -> None:
        self._seed = secrets.randbits(63)

    def _base_seed(self) -> int:
        if self._seed is None:
            self._seed = secrets.randbits(63)
        return self._seed

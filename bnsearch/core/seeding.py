"""Seeds derived from one root seed, so a resumed or parallel trial gets the seed it would have had."""

from __future__ import annotations

import zlib

import numpy as np
import torch


def _key_to_int(key: str | int) -> int:
    if isinstance(key, int):
        return key
    # crc32, not hash(): Python's string hashing changes between processes.
    return zlib.crc32(key.encode())


def derive_seed(root: int, *keys: str | int) -> int:
    """Return a 31-bit seed that depends only on ``root`` and ``keys``.

    Args:
        root: The run's root seed (``--seed``).
        *keys: Names and numbers that identify the consumer, e.g. ``("trial", 7)``.

    Returns:
        A non-negative integer below 2**31, stable across processes and platforms.
    """
    entropy = [root, *(_key_to_int(k) for k in keys)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0] >> 1)


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (never the global RNG)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen

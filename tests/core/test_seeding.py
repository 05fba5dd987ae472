from __future__ import annotations

import os
import subprocess
import sys

from bnsearch.core.seeding import derive_seed


def test_derive_seed_is_stable_and_distinct() -> None:
    assert derive_seed(0, "trial", 3) == derive_seed(0, "trial", 3)
    assert len({derive_seed(0, "trial", i) for i in range(100)}) == 100
    assert derive_seed(0, "split") != derive_seed(1, "split")
    assert derive_seed(0, "trial", 1) != derive_seed(0, "sampler", 1)
    assert 0 <= derive_seed(2**40, "x") < 2**31


def test_derive_seed_is_the_same_in_another_process() -> None:
    # String keys must not depend on Python's per-process hash randomisation.
    code = "from bnsearch.core.seeding import derive_seed; print(derive_seed(7, 'split', 'tpe', 3))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == derive_seed(7, "split", "tpe", 3)

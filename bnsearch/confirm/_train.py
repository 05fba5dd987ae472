"""One confirm cell: a configuration trained on one fresh seed (torch, no Optuna).

Seed index s of a study with root seed R is ``derive_seed(R, "confirm", s)``, a stream apart
from the search's ``derive_seed(R, "trial", n)``. From it come, for every configuration alike:

- the split: the search's test part is kept (``split_dataset(..., val_seed=...)``), and what it
  leaves is split into train and validation anew, so no confirm cell ever trains on test data;
- the initial weights: ``shared_init`` redraws every conv/linear layer from its own stream;
- the batch order.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

from bnsearch.core.seeding import derive_seed


@dataclass(frozen=True, slots=True, kw_only=True)
class CellSpec:
    """Everything one cell trains from (picklable: it crosses into ``--workers`` processes)."""

    params: dict[str, Any]  # the configuration's every setting (resolved_params)
    dataset: str  # the study's dataset (name or path)
    root_seed: int  # the study's root seed (--seed of the search)
    seed_index: int  # 0..S-1
    model: str = "bncnn"  # the study's --model (bncnn, plain, resnet or module:function)
    widths: tuple[int, int] = (32, 64)  # conv channels of the study's net
    decay_bn_params: bool = False  # as the study trained
    precision: str = "fp32"  # fp32 or bf16
    device: str = "cpu"  # resolved torch device


@dataclass(frozen=True, slots=True)
class CellResult:
    val_acc: float  # validation accuracy (0..1) of this seed's split; chance level when diverged
    diverged: bool
    wall_time_s: float
    test_acc: float | None = None  # only when asked for (the leader, once)
    n_val: int = 0  # validation examples of this seed's split (accuracy moves in steps of 1/n_val)

    def to_attrs(self) -> dict[str, Any]:
        return {
            "val_acc": self.val_acc,
            "diverged": self.diverged,
            "wall_time_s": round(self.wall_time_s, 3),
            "n_val": self.n_val,
        }


def cell_seed(root_seed: int, seed_index: int) -> int:
    """The seed of confirm seed ``seed_index``: disjoint from every search trial's seed."""
    return derive_seed(root_seed, "confirm", seed_index)


@functools.lru_cache(maxsize=1)  # cells run seed by seed: the last split is the next one's
def _data(dataset: str, root_seed: int, seed_index: int, device: str) -> Any:
    """Confirm seed ``seed_index``'s split, on the device."""
    from bnsearch.core.data import load_dataset, split_dataset, to_device

    splits = split_dataset(
        load_dataset(dataset),
        seed=derive_seed(root_seed, "split"),  # the search's: its test part
        val_seed=derive_seed(cell_seed(root_seed, seed_index), "split"),
    )
    return to_device(splits, device)


def train_cell(spec: CellSpec, *, score_test: bool = False) -> CellResult:
    """Train ``spec.params`` on confirm seed ``spec.seed_index`` and measure validation accuracy
    (and test accuracy only when ``score_test``)."""
    from bnsearch.core.model import ModelConfig, build_model, shared_init
    from bnsearch.core.space import TrialParams
    from bnsearch.core.train import TrainConfig, evaluate, train

    data = _data(spec.dataset, spec.root_seed, spec.seed_index, spec.device)
    seed = cell_seed(spec.root_seed, spec.seed_index)
    params = TrialParams(**spec.params)
    t0 = time.perf_counter()
    model = build_model(
        params,
        in_shape=data.in_shape,
        num_classes=data.num_classes,
        seed=derive_seed(seed, "model"),
        cfg=ModelConfig(model=spec.model, widths=spec.widths),
    )
    shared_init(model, seed)  # on the CPU: its generators are CPU generators
    model = model.to(data.device)
    result = train(
        model,
        data,
        params,
        seed=derive_seed(seed, "batches"),
        cfg=TrainConfig(decay_bn_params=spec.decay_bn_params, precision=spec.precision),
    )
    wall = time.perf_counter() - t0
    n_val = len(data.val_y)
    if result.diverged:
        chance = 1.0 / data.num_classes
        return CellResult(
            val_acc=chance, diverged=True, wall_time_s=wall, test_acc=chance if score_test else None, n_val=n_val
        )
    test_acc = evaluate(model, data.test_x, data.test_y) if score_test else None
    return CellResult(val_acc=result.val_acc, diverged=False, wall_time_s=wall, test_acc=test_acc, n_val=n_val)

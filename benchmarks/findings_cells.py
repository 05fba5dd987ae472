# ruff: noqa: E501  (wide report lines read better unwrapped)
"""Seconds per cell of ``bnsearch findings --design 2``, per net and dataset, and the seed-0 pilot
that fixed the positive control's lr and the resnet early-loss lr.

Cost (default): one grid cell of each net (bncnn, plain, resnet) at a mid-grid lr, one curve
cell (plain relu, validation every 20 steps with BN recomputed) and one probe run, per dataset,
each trained ``--repeats`` times in this process with ``--threads`` torch threads (1: the
layout of a ``--workers 2`` run, one 1-thread worker per core). Prints the median seconds and
the projected wall time of the first look (5 seeds) and of ``--quick`` from those seconds.

    PYTHONPATH=. python benchmarks/findings_cells.py                  # digits and mnist5k: ≈ 2 min quiet
    PYTHONPATH=. python benchmarks/findings_cells.py --pilot-lrs      # + plain relu none/before and both resnet arms at the high lrs
    PYTHONPATH=. python benchmarks/findings_cells.py --plain-width 16 --epochs-digits 8   # another size

Packing (``--pack K``): for each net, the grid cells of one arm without a curve (up to K of its
grid lrs, as a run packs them) trained one by one and then as one packed model, on
``--device``: seconds per cell each way (after one untimed run of each) and the largest
difference in validation accuracy (packed cells run NCHW, single ones channels_last: the deep
plain net turns that rounding into a few points).

    PYTHONPATH=. python benchmarks/findings_cells.py --device cuda --pack 16 --no-cost   # on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import _common  # puts the checkout on sys.path; machine facts

if TYPE_CHECKING:
    from bnsearch.core.data import DeviceData


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="digits,mnist5k")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.0215, help="lr of the cost cells (mid-grid)")
    ap.add_argument("--plain-depth", type=int)
    ap.add_argument("--plain-width", type=int)
    ap.add_argument("--resnet-width", type=int)
    ap.add_argument("--epochs-digits", type=int)
    ap.add_argument("--epochs-mnist5k", type=int)
    ap.add_argument("--pilot-lrs", action="store_true", help="also the seed-0 pilot at the high lrs (control lrs)")
    ap.add_argument("--no-cost", action="store_true", help="skip the cost cells (with --pilot-lrs or --pack)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    ap.add_argument("--pack", type=int, default=0, help="also K grid cells per net packed vs one by one")
    args = ap.parse_args()

    import torch

    from bnsearch.config import resolve_device
    from bnsearch.core.cpu import flush_denormals, set_backends
    from bnsearch.findings import _design2 as d2
    from bnsearch.findings._design import DEFAULT_SEEDS2, QUICK_DATASETS2, QUICK_SEEDS2, FindingsConfig
    from bnsearch.findings._runner import _load_data
    from bnsearch.findings._train import train_cell2

    flush_denormals()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    set_backends(device)
    for name, value in (
        ("PLAIN_DEPTH", args.plain_depth),
        ("PLAIN_WIDTH", args.plain_width),
        ("RESNET_WIDTH", args.resnet_width),
    ):
        if value is not None:
            setattr(d2, name, value)
    if args.epochs_digits:
        d2.EPOCHS2["digits"] = args.epochs_digits
    if args.epochs_mnist5k:
        d2.EPOCHS2["mnist5k"] = args.epochs_mnist5k
    print(f"machine: {_common.machine()}; device {device}")
    print(f"load average at start: {_common.load_avg()}")
    print(
        f"plain depth {d2.PLAIN_DEPTH} width {d2.PLAIN_WIDTH}; resnet depth {d2.RESNET_DEPTH} width {d2.RESNET_WIDTH}; "
        f"epochs {d2.EPOCHS2}; probe {d2.PROBE_STEPS} steps"
    )
    datasets = [d for d in args.datasets.split(",") if d]
    cfg = FindingsConfig(datasets=tuple(datasets), design=2, device=device)
    measured: dict[tuple[str, str], float] = dict(d2.CELL_SECONDS)
    for dataset in datasets:
        data = _load_data(cfg, dataset, 0)
        epochs = d2.epochs2(dataset)
        print(
            f"\n{dataset}: train {len(data.train_y)}, val {len(data.val_y)}, test {len(data.test_y)}; {epochs} epochs"
        )
        if not args.no_cost:
            cells = {
                "bncnn": d2.Cell2(d2.BNCNN_ARMS[1], args.lr),
                "plain": d2.Cell2(d2.PLAIN_RELU_ARMS[2], args.lr),  # relu/after: no curve
                "resnet": d2.Cell2(d2.RESNET_ARMS[0], args.lr),
                "plain+curve": d2.Cell2(d2.PLAIN_BEFORE, args.lr),
                "probe": d2.Cell2(d2.PLAIN_BEFORE, args.lr, kind="probe"),
            }
            secs: dict[str, float] = {}
            for label, cell in cells.items():
                times, out = [], None
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    out = train_cell2(cell, data, seed=0, epochs=epochs)
                    times.append(time.perf_counter() - t0)
                secs[label] = statistics.median(times)
                assert out is not None
                print(
                    f"  {label:12s} {cell.key:45s} {secs[label]:6.2f} s (median of {args.repeats}: "
                    f"{', '.join(f'{t:.2f}' for t in times)}); val {out.val_acc:.3f} test {out.test_acc:.3f} "
                    f"nll {out.test_nll if out.test_nll is not None else float('nan'):.3f} early {out.early_loss if out.early_loss is not None else float('nan'):.3f}"
                )
            for net in ("bncnn", "plain", "resnet", "probe"):
                measured[(net, dataset)] = secs[net]
            measured[("curve", dataset)] = max(0.0, secs["plain+curve"] - secs["plain"])
        if args.pack > 0:
            pack_lines(data, epochs=epochs, pack=args.pack, repeats=args.repeats)
        if args.pilot_lrs:
            print(f"  pilot, seed 0, {dataset}: plain relu none/before and resnet gamma 1/zero_last at high lrs")
            for arm in (d2.PLAIN_NONE, d2.PLAIN_BEFORE, *d2.RESNET_ARMS):
                for lr in (0.001, 0.01, 0.0464, 0.215, 0.464, 1.0, 2.15, 4.64):
                    if lr not in d2.grid_lrs(arm):
                        continue
                    out = train_cell2(replace(d2.Cell2(arm, lr), kind="grid"), data, seed=0, epochs=epochs)
                    print(
                        f"    {arm.name:28s} lr {lr:<6g} val {out.val_acc:.3f} diverged {out.diverged!s:5s} "
                        f"early loss {out.early_loss:.3f} ({out.wall_time_s:.1f} s)"
                    )
    if args.no_cost:
        return
    print("\nseconds per cell used for the projection:")
    for key in sorted(measured):
        if key[1] in datasets:
            print(f"  {key}: {measured[key]:.2f}")
    print(
        f"\ncells per dataset × seed: {len(d2.design2_cells())} grid + ≤ {len(d2.PROBE_ARMS) * d2.max_probe_cells()} probe"
    )
    for d in datasets:
        print(f"  one {d} job (one seed): {d2.job_seconds(d, cell_seconds=measured) / 60:.1f} min on one worker")
    first = FindingsConfig(datasets=tuple(datasets), seeds=DEFAULT_SEEDS2, workers=2, design=2)
    quick = FindingsConfig(datasets=QUICK_DATASETS2, seeds=QUICK_SEEDS2, workers=2, design=2)
    print(
        f"projected wall time, 2 workers: first look ({DEFAULT_SEEDS2} seeds × {', '.join(datasets)}) "
        f"{d2.estimate_wall_s(first, cell_seconds=measured) / 60:.1f} min; "
        f"--quick ({QUICK_SEEDS2} seeds × {', '.join(QUICK_DATASETS2)}) {d2.estimate_wall_s(quick, cell_seconds=measured) / 60:.1f} min"
    )
    print(f"load average at end: {_common.load_avg()}")


def pack_lines(data: DeviceData, *, epochs: int, pack: int, repeats: int) -> None:
    """Print, per net, seconds per cell of one arm's packable grid cells one by one and packed."""
    from bnsearch.findings import _design2 as d2
    from bnsearch.findings._train import train_cell2, train_cells_packed2

    print(f"  packs of up to {pack} grid cells of one arm (no curve), one by one vs packed, seed 0:")
    for arm in (d2.BNCNN_ARMS[1], d2.PLAIN_RELU_ARMS[2], d2.RESNET_ARMS[0]):
        cells = [c for c in (d2.Cell2(arm, lr) for lr in d2.grid_lrs(arm)) if not c.checkpoints][:pack]
        # Untimed first: a process's first run of a shape pays for kernel setup (cudnn.benchmark's
        # search on a GPU), and a pack of K is a shape of its own.
        train_cell2(cells[0], data, seed=0, epochs=epochs)
        train_cells_packed2(cells, data, seed=0, epochs=epochs)
        alone_s, packed_s = [], []
        for _ in range(repeats):  # interleaved, so a change in load hits both
            t0 = time.perf_counter()
            alone = [train_cell2(c, data, seed=0, epochs=epochs) for c in cells]
            alone_s.append((time.perf_counter() - t0) / len(cells))
            t0 = time.perf_counter()
            packed = train_cells_packed2(cells, data, seed=0, epochs=epochs)
            packed_s.append((time.perf_counter() - t0) / len(cells))
        a, p = statistics.median(alone_s), statistics.median(packed_s)
        gap = max(abs(x.val_acc - y.val_acc) for x, y in zip(alone, packed, strict=True))
        print(
            f"    {arm.name:24s} {len(cells):2d} cells (lr {cells[0].lr:g}…{cells[-1].lr:g}): one by one {a:6.3f} s/cell, "
            f"packed {p:6.3f} s/cell (speed-up {a / p:.2f}×; medians of {repeats}); largest val acc gap {gap:.4f}"
        )


if __name__ == "__main__":
    main()

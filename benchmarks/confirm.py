# ruff: noqa: E501  (wide report lines read better unwrapped)
"""The default search before and after ``--workers auto``, and a ``best --confirm`` example.

On one machine, in one run, each seed runs the default search (``bnsearch run --strategy tpe``,
the same options) twice, as whole CLI commands (process start-up and data loading count):

- **old default**: ``--workers 1 --threads 2`` (one process, two threads);
- **new default**: the worker count ``--workers auto`` chooses on this machine when the
  benchmark starts (``auto_workers``), 1 thread each. The command passes that count, because a
  run given ``--seed`` keeps one worker under ``auto`` (reproducibility), and the seeds are what
  make the ≥ 3 repeats differ.

The two layouts alternate within a seed, so load changes hit both alike. Then
``bnsearch best --confirm 3 --seeds 5`` runs on the new default's seed-0 study, timed.

    PYTHONPATH=. python benchmarks/confirm.py            # digits, 12 trials × 2 epochs, 3 seeds: a few minutes
    PYTHONPATH=. python benchmarks/confirm.py --full     # the README's main job: mnist5k, 30 trials × 4 epochs
    PYTHONPATH=. python benchmarks/confirm.py --full --dir bench-out   # keep the studies (bench-out/b.db)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts the checkout on sys.path)


def bnsearch(*args: str, cwd: Path) -> tuple[float, str]:
    """Run ``python -m bnsearch ARGS``; return its wall seconds and output."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "bnsearch", *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"bnsearch {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return wall, res.stdout + res.stderr


def best_value(url: str, study: str) -> float:
    import optuna

    return float(optuna.load_study(study_name=study, storage=url).best_value)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="mnist5k, 30 trials × 4 epochs (the README's main job)")
    ap.add_argument("--seeds", type=int, default=3, help="root seeds (repeats) per layout")
    ap.add_argument("--trials", type=int, default=None, help="trials per search [12; --full: 30]")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per trial [2; --full: 4]")
    ap.add_argument(
        "--workers", type=int, default=None, help="the new layout's workers [what --workers auto picks now]"
    )
    ap.add_argument("--dir", type=Path, default=None, help="keep the studies in DIR/b.db [a temporary folder]")
    args = ap.parse_args()
    import torch

    from bnsearch.search.workers import auto_workers

    dataset = "mnist5k" if args.full else "digits"
    trials = args.trials or (30 if args.full else 12)
    epochs = args.epochs or (4 if args.full else 2)
    auto = auto_workers("cpu", seeded=False)
    new = args.workers or auto
    print(
        f"CPU: {cpu_name()} ({os.cpu_count()} logical cores), torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}"
    )
    print(f"--workers auto picks {auto} worker(s) here now; the new layout runs {new} × 1 thread")
    print(f"search: bnsearch run --strategy tpe --dataset {dataset} --trials {trials} --epochs {epochs} --seed S")
    layouts = {
        "old 1×2": ["--workers", "1", "--threads", "2"],
        f"new {new}×1": ["--workers", str(new), "--threads", "1"],
    }
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in layouts}
    with tempfile.TemporaryDirectory(prefix="bnsearch-confirm-bench-") as tmp_:
        tmp = args.dir or Path(tmp_)
        tmp.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{tmp / 'b.db'}"
        for seed in range(args.seeds):
            order = list(layouts) if seed % 2 == 0 else list(layouts)[::-1]
            for name in order:
                study = f"{name.split()[0]}-s{seed}"
                common = ["--strategy", "tpe", "--dataset", dataset, "--trials", str(trials), "--epochs", str(epochs)]
                wall, _ = bnsearch(
                    "run",
                    *common,
                    "--seed",
                    str(seed),
                    "--storage",
                    url,
                    "--study-name",
                    study,
                    *layouts[name],
                    cwd=tmp,
                )
                rows[name].append((wall, best_value(url, study)))
                print(f"  seed {seed} {name}: {wall:6.1f} s, best val_acc {rows[name][-1][1]:.4f}", flush=True)
        print()
        print(
            "| layout | wall s per search (each seed) | median wall s | best val_acc (each seed) | mean best val_acc |"
        )
        print("| --- | --- | --- | --- | --- |")
        for name, r in rows.items():
            walls = ", ".join(f"{w:.1f}" for w, _ in r)
            accs = ", ".join(f"{a:.4f}" for _, a in r)
            print(
                f"| {name} | {walls} | {statistics.median(w for w, _ in r):.1f} | {accs} | {statistics.mean(a for _, a in r):.4f} |"
            )
        old_med = statistics.median(w for w, _ in rows["old 1×2"])
        new_med = statistics.median(w for w, _ in rows[f"new {new}×1"])
        print(f"\nnew / old median wall time: {new_med / old_med:.2f}")
        wall, out = bnsearch("best", "--study", "new-s0", "--storage", url, "--confirm", "3", "--seeds", "5", cwd=tmp)
        print(f"\nbnsearch best --study new-s0 --confirm 3 --seeds 5: {wall:.1f} s")
        print("\n".join("    " + line for line in out.strip().splitlines()))


if __name__ == "__main__":
    main()

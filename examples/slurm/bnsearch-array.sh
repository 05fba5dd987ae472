#!/bin/bash
# One bnsearch search over a SLURM job array: every array task runs one `bnsearch run` on the
# same study; the study-wide --max-trials stops them all at exactly that many trials.
#
#   export BNSEARCH_STORAGE=postgresql+psycopg://USER:PASSWORD@DBHOST/bnsearch
#   #   or, without a database server: journal:////shared/studies/bnsearch.log
#   sbatch --array=0-7 --gpus-per-task=2 --cpus-per-task=16 examples/slurm/bnsearch-array.sh \
#       --study bn-tpe --strategy tpe --max-trials 400
#
# Arguments after the script go to `bnsearch run` as they are (--study, --strategy, --dataset,
# --space, --epochs, --max-trials ...): give every task the same ones. sbatch exports the
# submitting shell's environment (BNSEARCH_STORAGE, the virtual environment's PATH) to the
# tasks. Workers: one per GPU that SLURM gave the task, else one on the task's CPUs.
#SBATCH --job-name=bnsearch
#SBATCH --output=bnsearch-%A_%a.out
set -euo pipefail

: "${BNSEARCH_STORAGE:?set BNSEARCH_STORAGE to the shared study storage (postgresql+psycopg://... or journal:////shared/path.log)}"

gpus=${SLURM_GPUS_ON_NODE:-0}
workers=$((gpus > 0 ? gpus : 1))
cpus=${SLURM_CPUS_PER_TASK:-1}
threads=$((cpus / workers > 0 ? cpus / workers : 1))

echo "array task ${SLURM_ARRAY_TASK_ID:-?} of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname): $workers worker(s), $threads thread(s) each"
# exec: scancel's SIGTERM reaches bnsearch itself, which closes its running trials.
exec bnsearch run --workers "$workers" --threads "$threads" "$@"

#!/usr/bin/env bash
# Cross-validation on a Slurm cluster, one fold per array task (docs/cluster.md):
#
#   examples/slurm/submit_cv.sh MANIFEST.csv RUN_DIR CONFIG
#
# submits three jobs, each waiting for the previous one to succeed (--dependency=afterok):
#   1. cv_features.sbatch   eGeMAPS features of every utterance, once (CPU)
#   2. cv_fold.sbatch       an array of n tasks: task i trains fold i (teachers + students)
#   3. cv_aggregate.sbatch  one more `emodistill cv` over every fold: results.json, report.md
# n is the number of folds of CONFIG on MANIFEST (`emodistill folds`). Extra sbatch options
# for all three jobs (account, partition, ...) go in $SBATCH_ARGS.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 MANIFEST.csv RUN_DIR CONFIG" >&2
    exit 2
fi
manifest=$1 run=$2 config=$3
here=$(cd "$(dirname "$0")" && pwd)

n=$(emodistill folds "$manifest" --config "$config" | wc -l)
if [ "$n" -lt 1 ]; then
    echo "error: $manifest has no folds under config $config" >&2
    exit 2
fi
mkdir -p "$run/slurm"
log=$run/slurm

# sbatch --parsable prints "JOBID" or "JOBID;CLUSTER"; dependencies want the id alone.
# ${SBATCH_ARGS:-} unquoted on purpose: it is a list of options.
submit() {
    local id
    id=$(sbatch --parsable ${SBATCH_ARGS:-} "$@")
    echo "${id%%;*}"
}

features=$(submit --output="$log/%x-%j.out" "$here/cv_features.sbatch" "$manifest")
folds=$(submit --output="$log/%x-%A_%a.out" --dependency="afterok:$features" \
    --array="0-$((n - 1))" "$here/cv_fold.sbatch" "$manifest" "$run" "$config")
aggregate=$(submit --output="$log/%x-%j.out" --dependency="afterok:$folds" \
    "$here/cv_aggregate.sbatch" "$manifest" "$run" "$config")
echo "features job $features; fold array $folds (tasks 0-$((n - 1)), $n folds); aggregate job $aggregate"

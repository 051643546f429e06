#!/usr/bin/env bash
# RAVDESS, from the public download to a trained, evaluated, exported speech-only model.
#
#   examples/recipes/ravdess.sh [WORK_DIR] [CLASSES]      (defaults: runs/ravdess, 4)
#
# CLASSES: 4 (neutral, happy, angry, sad: 672 clips) or all (8 classes: 1440 clips).
# Stages (each is skipped when its output exists, so a rerun continues where it stopped):
#   0. download + unzip Audio_Speech_Actors_01-24.zip (Zenodo record 1188976, CC BY-NC-SA 4.0;
#      or set RAVDESS_ROOT to a folder that already holds Actor_01 .. Actor_24)
#   1. manifest  (emodistill corpus ravdess)      4. probe + students (emodistill cv)
#   2. check     (emodistill corpus check)        5. paired comparison (emodistill compare)
#   3. teachers  (emodistill train-teachers)      6. pick-model -> ONNX, predict one clip
# The numbers it gave us are in docs/results.md ("RAVDESS recipe"). CPU: about an hour for
# 4 classes on 2 cores; a GPU is not needed (frozen Whisper tiny.en student).
set -euo pipefail

work=${1:-runs/ravdess}
classes=${2:-4}
emodistill=${EMODISTILL:-emodistill}
mkdir -p "$work"
run=$work/run-$classes
manifest=$work/ravdess-$classes.csv
config=$work/ravdess.yaml

# --- 0. data -----------------------------------------------------------------------------
root=${RAVDESS_ROOT:-$work/Audio_Speech_Actors_01-24}
if [ ! -d "$root/Actor_01" ]; then
    zip=$work/Audio_Speech_Actors_01-24.zip
    [ -f "$zip" ] || curl -L --fail -o "$zip.part" \
        "https://zenodo.org/record/1188976/files/Audio_Speech_Actors_01-24.zip?download=1" \
        && mv "$zip.part" "$zip"
    mkdir -p "$root" && unzip -q -o "$zip" -d "$root"
fi

# --- the config: the demo's student and teachers, RAVDESS's folds --------------------------
# 8 groups of 3 actors, 2 validation actors per fold. Both RAVDESS sentences are spoken in
# every emotion, so the text teacher is at chance: `teacher_weighting: student` lets a teacher
# teach only where it beats the plain student on the validation actors.
[ -f "$config" ] || cat > "$config" <<'YAML'
preset: demo
folds: {scheme: groups, groups: 8, val_speakers: 2, seed: 0}
distill: {teacher_weighting: student}
YAML

# --- 1-2. manifest and a look at every file ----------------------------------------------
[ -f "$manifest" ] || "$emodistill" corpus ravdess "$root" --out "$manifest" --classes "$classes"
[ -f "$work/ravdess-$classes"_check/check.json ] || "$emodistill" corpus check "$manifest"

# --- 3. teachers (T_L on the transcripts, T_P on eGeMAPS), per fold -------------------------
"$emodistill" train-teachers "$manifest" --out "$run" --config "$config"

# --- 4. plain student, then EmoDistill; the linear probe on the same frozen features --------
"$emodistill" cv "$manifest" --out "$run" --config "$config" --variant no_teachers
"$emodistill" cv "$manifest" --out "$run" --config "$config" --variant full

# --- 5. paired comparison: EmoDistill against plain fine-tuning ---------------------------
"$emodistill" compare "$run" --baseline no_teachers --variant full

# --- 6. a deployable model: the EmoDistill student of the fold with the best validation UA --
# (the first fold's when the students trained on their validation actors: no held-out score)
model=$work/model-$classes
"$emodistill" pick-model "$run" --out "$model"
"$emodistill" export-onnx "$model" "$model/model.int8.onnx" --quantize int8
# -print -quit, not `| head -1`: under pipefail, find's SIGPIPE would end the script
clip=$(find "$root" -name '*.wav' -print -quit)
"$emodistill" predict "$model" "$clip" --backend onnx-int8 --format json
echo "report: $run/report.md (EmoDistill), $run/variants/no_teachers/report.md (plain),"
echo "        $run/probe/probe.json (linear probe), $run/compare-full-vs-no_teachers.json"

"""Speaker normalisation with a realistic profile: enrolled from neutral (and calm) clips only.

In cross-validation a ``speaker_norm`` student normalises each test speaker with statistics of
*all* their test clips (every emotion). A deployed profile is more likely enrolled from a calm
stretch of a voice. This bench takes two cv run folders of the same manifest and folds -- plain
students with ``student.speaker_norm`` and without -- and, per fold and seed, scores on the test
speakers' clips whose label is *not* an enrolment label ("the rest"):

* ``plain``: the student without speaker normalisation (its cv predictions);
* ``sn all clips``: the speaker-normalised student, statistics of all the speaker's test clips
  (its cv predictions, restricted to the rest);
* ``sn enrolled``: the same student, statistics of the speaker's enrolment clips only (taken
  from ``--pool``, e.g. the 8-class RAVDESS manifest, whose calm clips the 4-class one lacks).

UA is the mean recall over the classes present in the rest. Paired differences over (fold,
seed) get a 95 % fold-bootstrap CI (``compare.cluster_bootstrap_ci``).

    PYTHONPATH=src python bench/speaker_enrol.py --manifest rav4.csv --pool rav8.csv \\
        --plain run4 --sn run4-sn --enrol neutral,calm --seeds 0,1
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from emodistill.config import Config
from emodistill.corpora.manifest import load_manifest
from emodistill.corpora.splits import config_folds
from emodistill.evaluation.compare import cluster_bootstrap_ci
from emodistill.models.speaker_stats import speaker_normalisers
from emodistill.models.student_folder import load_student
from emodistill.runs.layout import predictions_path, run_config_path, student_dir
from emodistill.training.data import EVAL_MAX_SECONDS, DistillDataset
from emodistill.training.distill import prefix_cache_dir
from emodistill.training.predictions import predict
from emodistill.training.speaker_data import whole_clip_means
from emodistill.util.files import read_json

VARIANT = "no_teachers"


def ua(y_true, y_pred) -> float:
    """Mean recall over the classes present in ``y_true``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def rest_scores(pred: dict, keep: set[str]) -> float:
    rows = [i for i, u in enumerate(pred["ids"]) if u in keep]
    return ua(np.take(pred["y_true"], rows), np.take(pred["y_pred"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--pool", help="manifest the enrolment clips come from (default: --manifest)")
    ap.add_argument("--plain", required=True, help="cv run folder without speaker_norm")
    ap.add_argument("--sn", required=True, help="cv run folder with student.speaker_norm")
    ap.add_argument("--enrol", default="neutral,calm", help="labels of the enrolment clips")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()

    manifest = load_manifest(args.manifest)
    pool = load_manifest(args.pool) if args.pool else manifest
    enrol_labels = set(args.enrol.split(","))
    cfg = Config.from_dict(read_json(run_config_path(args.sn)))
    seeds = [int(s) for s in args.seeds.split(",")]
    label_index = {lab: i for i, lab in enumerate(manifest.labels)}
    rows = []
    for fold in config_folds(manifest, cfg.folds):
        test = manifest.by_speakers(fold.test_speakers)
        rest = [u for u in test if u.label not in enrol_labels]
        keep = {u.id for u in rest}
        enrol = [u for u in pool.by_speakers(fold.test_speakers) if u.label in enrol_labels]
        for seed in seeds:
            seed_dir = None if seed == cfg.seed else seed
            model, _ = load_student(student_dir(args.sn, fold.id, VARIANT, seed_dir))
            glob = model.global_stats()
            means = whole_clip_means(model, enrol, prefix_cache_dir(pool, args.sn), False)
            speakers = {u.id: u.speaker for u in [*enrol, *rest]}
            norms = speaker_normalisers(means, speakers, glob, [u.id for u in rest])
            ds = DistillDataset(rest, label_index, EVAL_MAX_SECONDS, False, speaker_norms=norms)
            _, probs = predict(model, ds, 32)
            sn_pred = read_json(predictions_path(args.sn, fold.id, VARIANT, seed_dir))
            plain_pred = read_json(predictions_path(args.plain, fold.id, VARIANT, seed_dir))
            row = {
                "fold": fold.id,
                "seed": seed,
                "enrol_clips": len(enrol),
                "rest_clips": len(rest),
                "plain": rest_scores(plain_pred, keep),
                "sn_all": rest_scores(sn_pred, keep),
                "sn_enrolled": ua(ds.labels, probs.argmax(1)),
                "plain_all_test": plain_pred["metrics"]["ua"],
                "sn_all_test": sn_pred["metrics"]["ua"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    clusters = [r["fold"] for r in rows]
    print(f"\n{len(rows)} (fold, seed) runs; UA %, rest = test clips not labelled {args.enrol}")
    for name in ("plain", "sn_all", "sn_enrolled", "plain_all_test", "sn_all_test"):
        v = 100 * np.array([r[name] for r in rows])
        print(f"  {name:15s} {v.mean():6.2f} ± {v.std():5.2f}")
    for a, b in (("sn_all", "plain"), ("sn_enrolled", "plain"), ("sn_all_test", "plain_all_test")):
        d = 100 * np.array([r[a] - r[b] for r in rows])
        low, high = cluster_bootstrap_ci(d, clusters)
        print(f"  {a} - {b}: {d.mean():+.2f} [{low:+.2f}, {high:+.2f}]")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()

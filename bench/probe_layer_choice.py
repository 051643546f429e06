"""Would choosing the pooled layer per fold by the linear probe's validation UA help?

For each fold of a run folder, the probe (logistic regression on mean-pooled frozen states, C by
validation UA) is fitted on every layer; the layer with the best validation UA is "picked" and
its test UA printed beside layers 3 and 4. Only validation speakers choose; test UA is printed to
measure the rule, never to choose.

    PYTHONPATH=src python bench/probe_layer_choice.py MANIFEST RUN_DIR
"""

import sys

import numpy as np

from emodistill.config import Config
from emodistill.corpora.manifest import load_manifest
from emodistill.corpora.splits import config_folds, fold_utterances
from emodistill.evaluation.baseline import BaselineConfig, run_fold
from emodistill.evaluation.metrics import compute_metrics
from emodistill.evaluation.probe import PROBE_C_VALUES, layer_states
from emodistill.runs.layout import run_config_path
from emodistill.training.distill import prefix_cache_dir
from emodistill.util.files import read_json

manifest_path, run = sys.argv[1], sys.argv[2]
m = load_manifest(manifest_path)
cfg = Config.from_dict(read_json(run_config_path(run)))
folds = config_folds(m, cfg.folds)
keep = {u.id for f in folds for part in fold_utterances(m, f) for u in part}
utts = [u for u in m.utterances if u.id in keep]
ids, pooled = layer_states(
    m, cfg.student.encoder, prefix_cache_dir(m, run), cfg.student.max_seconds, False, utts
)
by = {u.id: u for u in m.utterances}
y = np.array([m.label_index(by[i].label) for i in ids])
spk = np.array([by[i].speaker for i in ids])
row = {u: r for r, u in enumerate(ids)}
bc = BaselineConfig(c_values=list(PROBE_C_VALUES), max_iter=2000)
for f in folds:
    parts = []
    for p in fold_utterances(m, f):
        mk = np.zeros(len(ids), bool)
        mk[[row[u.id] for u in p if u.id in row]] = True
        parts.append(mk)
    val, test = {}, {}
    for k in range(pooled.shape[1]):
        r = run_fold(pooled[:, k, :].astype(np.float64), y, spk, tuple(parts), len(m.labels), bc)
        val[k] = max(r["val_ua"].values())
        test[k] = compute_metrics(r["y_true"], r["y_pred"], len(m.labels))["ua"]
    pick = max(val, key=lambda k: (val[k], k))
    print(
        f.id,
        "val",
        {k: round(100 * v, 1) for k, v in val.items()},
        "pick",
        pick,
        "test@pick",
        round(100 * test[pick], 1),
        "test L3",
        round(100 * test[3], 1),
        "L4",
        round(100 * test[4], 1),
        flush=True,
    )

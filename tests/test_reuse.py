"""Reuse that cannot go stale: a fold's fingerprint covers its rows, audio and speaker split."""

from __future__ import annotations

import csv
import json

import numpy as np
import soundfile as sf

from emodistill.config import load_config
from emodistill.corpora.manifest import load_manifest
from emodistill.corpora.splits import fold_fingerprint, make_folds
from emodistill.training.predictions import check_reusable, config_key

LABELS = ("neutral", "happy", "angry", "sad")


def _corpus(tmp_path, speakers=6, edit=None):
    rows = []
    for s in range(speakers):
        for k in range(4):
            name = f"s{s}_{k}"
            wav = tmp_path / f"{name}.wav"
            if not wav.exists():
                sf.write(wav, 0.1 * np.sin(np.arange(8000) * (s + k + 1) / 50), 16000)
            rows.append([name, wav.name, LABELS[k], f"spk{s}", "", f"text {k}"])
    if edit:
        edit(rows)
    path = tmp_path / f"m{speakers}.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "label", "speaker", "session", "transcript"])
        w.writerows(rows)
    return load_manifest(path)


def _fold(m, k=3):
    return make_folds(m, scheme="groups", groups=k, val_speakers=1, seed=0)[0]


def test_fingerprint_follows_labels_audio_and_membership(tmp_path):
    m = _corpus(tmp_path)
    base = fold_fingerprint(m, _fold(m))
    assert fold_fingerprint(_corpus(tmp_path), _fold(_corpus(tmp_path))) == base  # stable

    def relabel(rows):
        rows[1][2] = "sad"

    edited = _corpus(tmp_path, edit=relabel)
    assert fold_fingerprint(edited, _fold(edited)) != base
    # A seventh speaker moves a groups fold's membership.
    more = _corpus(tmp_path, speakers=7)
    assert fold_fingerprint(more, _fold(more)) != base
    # Same rows, new audio bytes.
    sf.write(tmp_path / "s0_0.wav", np.zeros(8000), 16000)
    assert fold_fingerprint(m, _fold(m)) != base


def test_predictions_from_other_data_are_not_reused(tmp_path):
    cfg = load_config("demo")
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps({"config": config_key(cfg), "data": "old"}))
    assert check_reusable(path, cfg, data="old") is True
    assert check_reusable(path, cfg, data="new") is False
    assert check_reusable(path, cfg) is True  # callers that do not know the data

"""Check the synthetic corpus design: how much emotion do the words, the prosody and both carry?

Speaker-independent (GroupKFold over speakers: the test speakers are never trained on), three
simple classifiers, each with its C chosen by inner cross-validation over the training speakers:

* words only:   logistic regression on a bag of words (unigrams + bigrams) of the transcripts;
* prosody only: logistic regression on opensmile eGeMAPSv02 functionals (88 per utterance),
  standardised on the training speakers;
* both:         logistic regression on the two feature sets concatenated (the word block's weight
  is chosen by the inner cross-validation too).

Prints UA (mean per-class recall) and WA (accuracy), pooled over all test predictions and as
mean +- std over folds. The design targets (issue #2): words UA 0.55-0.85, prosody UA 0.45-0.75,
both above each.

Usage::

    python bench/corpus_design.py                   # synthesise the default corpus in a tmp dir
    python bench/corpus_design.py OUT/manifest.csv  # an existing manifest
    python bench/corpus_design.py --utterances 600 --speakers 10 --seed 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def functionals(paths: list[Path], workers: int) -> np.ndarray:
    """(N, 88) eGeMAPSv02 functionals, one row per file (opensmile, ``workers`` processes)."""
    import opensmile

    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
        num_workers=workers,
        multiprocessing=workers > 1,
    )
    df = smile.process_files([str(p) for p in paths])
    return df.to_numpy(dtype=np.float64)


#: Hyper-parameter grids, chosen per outer fold by inner cross-validation on training speakers.
C_GRID = (0.02, 0.1, 0.5)
#: Weight of the bag-of-words block in "both": a sentence has a handful of words against 88
#: standardised functionals, so without it the acoustic block dominates the L2 penalty.
WORD_WEIGHT_GRID = (2.0, 4.0, 8.0)


def _blocks(name: str, bow, acoustic, weight: float):
    from scipy import sparse

    if name == "words":
        return bow
    if name == "prosody":
        return acoustic
    return sparse.hstack([bow * weight, sparse.csr_matrix(acoustic)]).tocsr()


def _fit_predict(name, texts, acoustic, y, train, test, weight, c):
    """Fit on ``train`` rows, predict ``test`` rows (vocabulary and scaler from ``train`` only)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    vec = CountVectorizer(ngram_range=(1, 2), lowercase=True)
    bow_tr = vec.fit_transform([texts[i] for i in train])
    bow_te = vec.transform([texts[i] for i in test])
    scaler = StandardScaler().fit(acoustic[train])
    x_tr = _blocks(name, bow_tr, scaler.transform(acoustic[train]), weight)
    x_te = _blocks(name, bow_te, scaler.transform(acoustic[test]), weight)
    clf = LogisticRegression(C=c, max_iter=5000).fit(x_tr, y[train])
    return clf.predict(x_te)


def evaluate(
    manifest_path: Path,
    workers: int,
    folds: int,
    inner_folds: int = 3,
    cache: Path | None = None,
) -> dict[str, dict[str, float]]:
    """Cross-validate the three classifiers, speaker-independently.

    Outer: ``folds`` GroupKFold splits over speakers (test speakers never seen in training).
    Inner: ``inner_folds`` GroupKFold splits over the *training* speakers pick C (and the word
    block weight for "both") by UA. ``cache``: .npy file for the functionals (reused when its row
    count matches; delete it when the audio changes).

    Returns:
        {name: {ua, wa, ua_mean, ua_std, wa_mean, wa_std, chosen}} for words, prosody, both.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.model_selection import GroupKFold

    from emodistill.corpora.manifest import load_manifest

    manifest = load_manifest(manifest_path)
    utts = manifest.utterances
    y = np.array([manifest.label_index(u.label) for u in utts])
    groups = np.array([u.speaker for u in utts])
    texts = [u.transcript or "" for u in utts]
    acoustic = np.load(cache) if cache is not None and cache.is_file() else None
    if acoustic is None or len(acoustic) != len(utts):
        t0 = time.perf_counter()
        acoustic = functionals([u.path for u in utts], workers)
        print(f"eGeMAPS functionals: {len(utts)} files in {time.perf_counter() - t0:.1f} s")
        if cache is not None:
            np.save(cache, acoustic)

    grids = {
        "words": [(1.0, c) for c in C_GRID],
        "prosody": [(1.0, c) for c in C_GRID],
        "both": [(w, c) for w in WORD_WEIGHT_GRID for c in C_GRID],
    }
    preds = {name: np.empty_like(y) for name in grids}
    per_fold: dict[str, list[tuple[float, float]]] = {name: [] for name in grids}
    chosen: dict[str, list[tuple[float, float]]] = {name: [] for name in grids}
    for train, test in GroupKFold(n_splits=folds).split(texts, y, groups):
        inner = list(GroupKFold(n_splits=inner_folds).split(train, y[train], groups[train]))
        for name, grid in grids.items():
            scores = []
            for weight, c in grid:
                inner_pred = np.empty(len(train), dtype=y.dtype)
                for itr, ite in inner:
                    inner_pred[ite] = _fit_predict(
                        name, texts, acoustic, y, train[itr], train[ite], weight, c
                    )
                scores.append(balanced_accuracy_score(y[train], inner_pred))
            weight, c = grid[int(np.argmax(scores))]
            chosen[name].append((weight, c))
            p = _fit_predict(name, texts, acoustic, y, train, test, weight, c)
            preds[name][test] = p
            per_fold[name].append((balanced_accuracy_score(y[test], p), accuracy_score(y[test], p)))
    out: dict[str, dict] = {}
    for name, p in preds.items():
        folds_ua = np.array([f[0] for f in per_fold[name]])
        folds_wa = np.array([f[1] for f in per_fold[name]])
        out[name] = {
            "ua": float(balanced_accuracy_score(y, p)),
            "wa": float(accuracy_score(y, p)),
            "ua_mean": float(folds_ua.mean()),
            "ua_std": float(folds_ua.std()),
            "wa_mean": float(folds_wa.mean()),
            "wa_std": float(folds_wa.std()),
            "chosen": chosen[name],
        }
    out["_info"] = {"folds": folds, "utterances": len(utts), "speakers": len(set(groups))}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", nargs="?", type=Path, help="manifest CSV (default: synthesise)")
    ap.add_argument("--utterances", type=int, default=1200)
    ap.add_argument("--speakers", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="processes for synthesis/opensmile")
    ap.add_argument("--folds", type=int, default=6, help="outer speaker folds (GroupKFold)")
    ap.add_argument("--cache", type=Path, default=None, help=".npy file caching the functionals")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="emodistill-corpus-") as tmp:
        manifest = args.manifest
        if manifest is None:
            from emodistill.corpora.synthetic import synthesize_corpus

            t0 = time.perf_counter()
            manifest = synthesize_corpus(
                Path(tmp) / "corpus",
                utterances=args.utterances,
                speakers=args.speakers,
                seed=args.seed,
                workers=args.workers,
                progress=False,
            )
            print(
                f"synthesised {args.utterances} utterances, {args.speakers} speakers, "
                f"seed {args.seed} in {time.perf_counter() - t0:.1f} s ({args.workers} workers)"
            )
        res = evaluate(Path(manifest), args.workers, args.folds, cache=args.cache)
    info = res.pop("_info")
    print(
        f"speaker-independent: {info['folds']} folds (GroupKFold by speaker), "
        f"{info['utterances']} utterances, {info['speakers']} speakers"
    )
    print(f"{'features':<10} {'UA':>6} {'WA':>6}   {'UA per fold':>16}   {'WA per fold':>16}")
    for name, r in res.items():
        print(
            f"{name:<10} {r['ua']:6.3f} {r['wa']:6.3f}   "
            f"{r['ua_mean']:.3f} +- {r['ua_std']:.3f}   {r['wa_mean']:.3f} +- {r['wa_std']:.3f}"
        )
    for name, r in res.items():
        print(f"chosen (word weight, C) per fold, {name}: {r['chosen']}")
    ok = (
        0.55 <= res["words"]["ua"] <= 0.85
        and 0.45 <= res["prosody"]["ua"] <= 0.75
        and res["both"]["ua"] > max(res["words"]["ua"], res["prosody"]["ua"])
    )
    print(
        "design targets (words 0.55-0.85, prosody 0.45-0.75, both > each):",
        "met" if ok else "NOT met",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

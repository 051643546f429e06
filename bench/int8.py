"""int8 against float on a trained model folder, side by side in one run.

For each quantisation mode (``export.quantize_int8``'s options) it writes an int8 copy of the
folder's float ONNX export and measures, against the float torch model on the same clips:
label agreement on every clip of a manifest, test UA on the model's own test speakers (its
``config.json`` names them), and the cost per audio second relative to the ONNX float graph
(interleaved repeats, median). It also prints how many clips have a top-2 probability margin
below 0.05: a label whose margin is smaller than the quantisation error can flip.

    .venv/bin/python bench/int8.py runs/demo/model runs/demo/corpus/manifest.csv
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

MODES = {
    "per-tensor, all MatMuls (before)": {
        "per_channel": False,
        "heads_in_float": False,
        "reduce_range": False,
    },
    "per-channel, heads in float, 8-bit weights (before)": {
        "per_channel": True,
        "heads_in_float": True,
        "reduce_range": False,
    },
    "per-channel, heads in float, 7-bit weights (default)": {
        "per_channel": True,
        "heads_in_float": True,
        "reduce_range": True,
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", type=Path, help="a trained model folder (e.g. runs/demo/model)")
    ap.add_argument("manifest", type=Path, help="manifest CSV whose clips are scored")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timing runs")
    ap.add_argument("--timing-clips", type=int, default=48, help="clips per timing run")
    args = ap.parse_args()

    from emodistill.audio import load_audio
    from emodistill.corpora.manifest import load_manifest
    from emodistill.evaluation.metrics import compute_metrics
    from emodistill.inference.batching import pad_batch
    from emodistill.inference.model import EmoDistill
    from emodistill.inference.onnx import OnnxPredictor, export_onnx, quantize_int8
    from emodistill.models.folder import ONNX_NAME, config_path

    cfg = json.loads(config_path(args.model).read_text())
    labels = cfg["labels"]
    test_speakers = set(cfg.get("test_speakers") or [])
    m = load_manifest(args.manifest)
    utts = [u for u in m.utterances if u.label in labels]
    signals = [load_audio(u.path) for u in utts]
    y = np.array([labels.index(u.label) for u in utts])
    on_test = np.array([u.speaker in test_speakers for u in utts])

    ref = EmoDistill.from_pretrained(args.model).predict_proba(signals, batch_size=8)
    ref_label = ref.argmax(1)
    top2 = np.sort(ref, 1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    print(
        f"{len(utts)} clips ({on_test.sum()} of the model's test speakers); top-2 margin < 0.05 on "
        f"{100 * np.mean(margin < 0.05):.1f} % of them (median margin {np.median(margin):.3f})"
    )
    ua_ref = (
        compute_metrics(y[on_test], ref_label[on_test], len(labels))["ua"]
        if on_test.any()
        else float("nan")
    )

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        shutil.copytree(args.model, folder, ignore=shutil.ignore_patterns("*.onnx"))
        float_path = folder / ONNX_NAME
        export_onnx(folder, float_path)
        paths = {"ONNX float": float_path}
        for name, kw in MODES.items():
            out = folder / f"int8-{len(paths)}.onnx"
            quantize_int8(float_path, out, **kw)
            paths[name] = out
        predictors = {name: OnnxPredictor(p) for name, p in paths.items()}
        timing = signals[: args.timing_clips]
        seconds = sum(s.size for s in timing) / 16000
        costs: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.repeats):
            for name, pred in predictors.items():  # interleaved: drift hits every row alike
                t0 = time.perf_counter()
                for s in timing:
                    pred(*pad_batch([s]))
                costs[name].append((time.perf_counter() - t0) / seconds)
        base = statistics.median(costs["ONNX float"])
        print(
            "\n| mode | agreement with float torch | max abs dp | "
            f"test UA (float torch {100 * ua_ref:.2f}) | cost / audio s vs ONNX float |"
        )
        print("|---|---|---|---|---|")
        for name, pred in predictors.items():
            probs = np.concatenate([pred(*pad_batch([s])) for s in signals])
            lab = probs.argmax(1)
            ua = (
                compute_metrics(y[on_test], lab[on_test], len(labels))["ua"]
                if on_test.any()
                else float("nan")
            )
            print(
                f"| {name} | {100 * np.mean(lab == ref_label):.2f} % "
                f"({(lab == ref_label).sum()}/{len(lab)}) | "
                f"{np.abs(probs - ref).max():.4f} | {100 * ua:.2f} ({100 * (ua - ua_ref):+.2f}) | "
                f"{statistics.median(costs[name]) / base:.2f} |"
            )


if __name__ == "__main__":
    main()

"""Student capacity search on cached frozen encoder states (issue 17, item 1).

For each student setting (encoder, layers, pooling, augmentation, schedule) it trains the plain
student (CE only) and EmoDistill (CE + KD from the fold's cached teachers, with the chosen
``teacher_weighting``) on every fold x seed of a run folder whose teachers are trained
(``emodistill train-teachers``), and prints test UA of both, the paired gain with its 95 %
fold-bootstrap CI, and the teachers' UA on the same folds.

It is the library's own student and loss -- ``EmoDistillStudent.from_prefix``,
``StudentModule.loss`` / ``mixup_loss``, ``StateAugment``, ``configure_adamw``, the teacher
weighting rule and ``compare.cluster_bootstrap_ci`` -- in a bare loop over states held in memory
(no Lightning, no per-epoch disk reads), so a 6-fold x 2-seed row costs seconds to minutes
instead of the pipeline's minutes. Checkpoint selection is on validation UA, as in ``distill``.
Settings are chosen with it on development data (another synth seed, RAVDESS), never on the
demo's test speakers. ``trainable`` rows train the top encoder layer(s) too, from the
cached output of the layer below (what the pipeline's prefix cache does).

    PYTHONPATH=src python bench/student_search.py --manifest DEV/manifest.csv --run RUN \\
        --config demo --seeds 0,1 --rows tiny-last-attn,tiny-mix-ln-stats
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from emodistill.config import TEACHER_KINDS, StudentConfig, load_config
from emodistill.config.variants import BASELINE, FULL, get_variant
from emodistill.corpora.manifest import load_manifest
from emodistill.corpora.splits import config_folds, fold_utterances
from emodistill.evaluation.compare import cluster_bootstrap_ci
from emodistill.evaluation.metrics import compute_metrics
from emodistill.features.prefix_cache import PrefixCache, collate_prefix
from emodistill.models.augment import StateAugment
from emodistill.models.student import build_student
from emodistill.runs import layout
from emodistill.training.common import (
    class_weights_if_needed,
    configure_adamw,
    student_param_groups,
    total_steps,
)
from emodistill.training.distill import prefix_cache_dir
from emodistill.training.module import StudentModule
from emodistill.training.teacher_cache import load_fold_teachers
from emodistill.training.teacher_weighting import teacher_validation_ua, teacher_weights

ENCODERS = {"tiny": "embedded:whisper-tiny.en", "base": "embedded:whisper-base"}

#: name -> student overrides; "layers": last (the final layer) | mix (learned weighted sum)
ROWS = {
    "tiny-last-mean": dict(enc="tiny", layers="last", pooling="mean"),
    "tiny-last-attn": dict(enc="tiny", layers="last", pooling="attention"),  # the old demo
    "tiny-last-stats": dict(enc="tiny", layers="last", pooling="stats"),
    "tiny-last-attnstats": dict(enc="tiny", layers="last", pooling="attention_stats"),
    "tiny-mix-attn": dict(enc="tiny", layers="mix", pooling="attention"),
    "tiny-mixln-attn": dict(enc="tiny", layers="mix", layer_norm=True, pooling="attention"),
    "tiny-mixln-stats": dict(enc="tiny", layers="mix", layer_norm=True, pooling="stats"),
    "tiny-mixln-attnstats": dict(
        enc="tiny", layers="mix", layer_norm=True, pooling="attention_stats"
    ),
    "tiny-mixln-stats-mask": dict(
        enc="tiny", layers="mix", layer_norm=True, pooling="stats", time_mask=0.2, channel_mask=0.1
    ),
    "tiny-mixln-stats-mixup": dict(
        enc="tiny", layers="mix", layer_norm=True, pooling="stats", mixup=0.4
    ),
    "tiny-mixln-stats-30ep": dict(
        enc="tiny", layers="mix", layer_norm=True, pooling="stats", epochs=30
    ),
    "tiny-last-attn-bn": dict(enc="tiny", layers="last", pooling="attention", pooled_norm=True),
    "tiny-last-stats-bn": dict(enc="tiny", layers="last", pooling="stats", pooled_norm=True),
    "tiny-mixln-stats-bn": dict(
        enc="tiny", layers="mix", layer_norm=True, pooling="stats", pooled_norm=True
    ),
    "tiny-mixln-attnstats-bn": dict(
        enc="tiny", layers="mix", layer_norm=True, pooling="attention_stats", pooled_norm=True
    ),
    "tiny-mixln-stats-bn-30ep": dict(
        enc="tiny", layers="mix", layer_norm=True, pooling="stats", pooled_norm=True, epochs=30
    ),
    "tiny-mixln-stats-bn-mask": dict(
        enc="tiny",
        layers="mix",
        layer_norm=True,
        pooling="stats",
        pooled_norm=True,
        time_mask=0.2,
        channel_mask=0.1,
    ),
    "tiny-mixln-stats-bn-mixup": dict(
        enc="tiny", layers="mix", layer_norm=True, pooling="stats", pooled_norm=True, mixup=0.4
    ),
    "tiny-last-stats-bn-30ep": dict(
        enc="tiny", layers="last", pooling="stats", pooled_norm=True, epochs=30
    ),
    "tiny-last-stats-bn-mask": dict(
        enc="tiny",
        layers="last",
        pooling="stats",
        pooled_norm=True,
        time_mask=0.2,
        channel_mask=0.1,
    ),
    "tiny-last-stats-bn-mixup": dict(
        enc="tiny", layers="last", pooling="stats", pooled_norm=True, mixup=0.4
    ),
    "tiny-last-attnstats-bn": dict(
        enc="tiny", layers="last", pooling="attention_stats", pooled_norm=True
    ),
    "tiny-last-stats-bn-20ep": dict(
        enc="tiny", layers="last", pooling="stats", pooled_norm=True, epochs=20
    ),
    "tiny-last-stats-bn-30ep-kd": dict(  # CE 0.25, KD and embedding 0.75 (mtkd4ser's ratio)
        enc="tiny",
        layers="last",
        pooling="stats",
        pooled_norm=True,
        epochs=30,
        alpha=0.25,
        beta=0.75,
    ),
    "tiny-last-stats-bn-30ep-mixup": dict(
        enc="tiny", layers="last", pooling="stats", pooled_norm=True, epochs=30, mixup=0.4
    ),
    # the top encoder layer trains too (from the cached output of the layer below)
    "tiny-top1-stats-bn": dict(
        enc="tiny", layers="last", trainable=1, pooling="stats", pooled_norm=True, lr=3e-4
    ),
    "tiny-top1-stats-bn-30ep": dict(
        enc="tiny",
        layers="last",
        trainable=1,
        pooling="stats",
        pooled_norm=True,
        lr=3e-4,
        epochs=30,
    ),
    "tiny-top1-attn-bn": dict(
        enc="tiny", layers="last", trainable=1, pooling="attention", pooled_norm=True, lr=3e-4
    ),
    # a temporal CNN with [mean, max] over time: a keyword detector on the frames
    "tiny-last-conv": dict(enc="tiny", layers="last", pooling="conv"),
    "tiny-last-conv-bn": dict(enc="tiny", layers="last", pooling="conv", pooled_norm=True),
    "tiny-mixln-conv-bn": dict(
        enc="tiny", layers="mix", layer_norm=True, pooling="conv", pooled_norm=True
    ),
    "tiny-last-conv-bn-20ep": dict(
        enc="tiny", layers="last", pooling="conv", pooled_norm=True, epochs=20
    ),
    "tiny-last-conv-bn-mask": dict(
        enc="tiny",
        layers="last",
        pooling="conv",
        pooled_norm=True,
        time_mask=0.2,
        channel_mask=0.1,
    ),
    "tiny-last-conv-bn-mixup": dict(
        enc="tiny", layers="last", pooling="conv", pooled_norm=True, mixup=0.4
    ),
    "tiny-top1-conv-bn": dict(
        enc="tiny", layers="last", trainable=1, pooling="conv", pooled_norm=True, lr=3e-4
    ),
    "tiny-last-conv-bn-kd": dict(  # CE 0.25, KD and embedding 0.75
        enc="tiny", layers="last", pooling="conv", pooled_norm=True, alpha=0.25, beta=0.75
    ),
    "tiny-last-conv-bn-kd-20ep": dict(
        enc="tiny",
        layers="last",
        pooling="conv",
        pooled_norm=True,
        alpha=0.25,
        beta=0.75,
        epochs=20,
    ),
    "base-last-conv-bn": dict(enc="base", layers="last", pooling="conv", pooled_norm=True),
    "base-last-stats-bn": dict(enc="base", layers="last", pooling="stats", pooled_norm=True),
    "base-mixln-stats-bn": dict(
        enc="base", layers="mix", layer_norm=True, pooling="stats", pooled_norm=True
    ),
    "base-last-attn": dict(enc="base", layers="last", pooling="attention"),
    "base-last-stats": dict(enc="base", layers="last", pooling="stats"),
    "base-mixln-stats": dict(enc="base", layers="mix", layer_norm=True, pooling="stats"),
    "base-mixln-attnstats": dict(
        enc="base", layers="mix", layer_norm=True, pooling="attention_stats"
    ),
}


def load_states(manifest, encoder: str, max_seconds: float):
    """utt id -> (L + 1, T, H) float32 tensor of every layer (computed once, cached on disk)."""
    cfg = StudentConfig(encoder=encoder, trainable_layers=0, layer_weights=True)
    student = build_student(cfg, len(manifest.labels), 8, 8)
    cache = PrefixCache(
        student, manifest.utterances, prefix_cache_dir(manifest, Path(".")), max_seconds
    )
    return {
        u.id: torch.from_numpy(np.array(cache[u.id], dtype=np.float32)) for u in manifest.utterances
    }


def state_slice(row, num_layers: int) -> slice:
    """Which of the cached (L + 1) states a row's student reads: its prefix (the input of its
    first trainable layer, or every state up to there with a layer mix)."""
    if "layer" in row:  # a frozen student pooling layer k's output (0 = embedding output)
        return slice(int(row["layer"]), int(row["layer"]) + 1)
    first = num_layers - int(row.get("trainable", 0))
    return slice(0 if row["layers"] == "mix" else first, first + 1)


def batches(items, states, labels, teachers, kinds, sel, batch_size, gen=None):
    order = torch.randperm(len(items), generator=gen) if gen is not None else range(len(items))
    order = list(order)
    for s in range(0, len(order), batch_size):
        ids = [items[int(i)] for i in order[s : s + batch_size]]
        arrays = [states[i][sel] for i in ids]
        prefix, frames = collate_prefix(arrays)
        batch = {
            "prefix": prefix,
            "frame_lengths": frames,
            "labels": torch.tensor([labels[i] for i in ids]),
            "teacher_logits": {
                k: torch.from_numpy(np.asarray(teachers[k].logits_of(ids), np.float32))
                for k in kinds
            },
            "teacher_emb": {
                k: torch.from_numpy(np.asarray(teachers[k].embeddings_of(ids), np.float32))
                for k in kinds
            },
        }
        yield ids, batch


def probabilities(student, items, states, labels, sel):
    """(N, C) softmax outputs of ``student`` on ``items`` (eval mode)."""
    student.eval()
    probs = []
    with torch.no_grad():
        for _ids, batch in batches(items, states, labels, {}, (), sel, 64):
            out = student.from_prefix(batch["prefix"], batch["frame_lengths"])
            probs.append(out.logits.float().softmax(-1))
    student.train()
    return torch.cat(probs)


def evaluate(student, items, states, labels, sel, n_classes, probs_out=None):
    probs = probabilities(student, items, states, labels, sel)
    if probs_out is not None:
        probs_out[:] = [probs]
    preds = probs.argmax(-1).tolist()
    return compute_metrics([labels[i] for i in items], preds, n_classes)["ua"]


def fit_probe_skip(student, train, val, states, labels, sel, n_classes):
    """LP-FT screen: a Linear(H, C) on the standardised clip mean of the pooled layer, set to the
    probe's logistic regression (C chosen on the validation clips, fit on the training clips)
    and added to the student's logits (``student.probe_skip``)."""
    from sklearn.linear_model import LogisticRegression

    from emodistill.evaluation.probe import PROBE_C_VALUES

    def means(ids):
        return np.stack([states[i][sel][-1].mean(0).numpy() for i in ids]).astype(np.float64)

    xtr, xva = means(train), means(val)
    ytr, yva = [labels[i] for i in train], [labels[i] for i in val]
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-8
    best = None
    for c in PROBE_C_VALUES:
        lr = LogisticRegression(C=c, max_iter=2000).fit((xtr - mu) / sd, ytr)
        ua = compute_metrics(yva, lr.predict((xva - mu) / sd), n_classes)["ua"]
        if best is None or ua > best[0]:
            best = (ua, lr)
    lr = best[1]
    h = xtr.shape[1]
    lin = torch.nn.Linear(h, n_classes)
    with torch.no_grad():
        w = torch.tensor(lr.coef_ / sd, dtype=torch.float32)
        lin.weight.copy_(w)
        lin.bias.copy_(torch.tensor(lr.intercept_ - (lr.coef_ / sd) @ mu, dtype=torch.float32))
    return lin


def add_skip(student, lin, trainable: bool):
    """The student's logits + ``lin`` of the first H pooled values (the clip mean)."""
    student.add_module("probe_skip", lin)
    for p in lin.parameters():
        p.requires_grad_(trainable)
    heads = student._heads
    h = lin.in_features

    def _heads(pooled):
        out = heads(pooled)
        return out._replace(logits=out.logits + student.probe_skip(pooled[:, :h].float()))

    student._heads = _heads


def train_one(
    cfg, row, fold, fold_dir, manifest, states, seed, variant, plain_val=None, test_states=None
):
    """One (fold, seed, variant): returns (val UA, test UA at the best validation epoch, w).
    ``test_states``: the test clips' states (default ``states``; the pipeline tests whole clips
    of up to ``EVAL_MAX_SECONDS`` where it trains on ``student.max_seconds`` crops)."""
    test_states = states if test_states is None else test_states
    # "ens": k separate runs (seeds 1000 * seed + j), their test probabilities averaged: what
    # the pipeline's ``student.members`` approximates in one run. "_probs": a list that
    # receives the kept epoch's test probabilities.
    if row.get("ens"):
        sub = {k: v for k, v in row.items() if k != "ens"}
        vals, probs = [], []
        for j in range(int(row["ens"])):
            holder: list = []
            v, _, w = train_one(
                cfg,
                {**sub, "_probs": holder},
                fold,
                fold_dir,
                manifest,
                states,
                1000 * seed + j,
                variant,
                plain_val,
                test_states,
            )
            vals.append(v)
            probs.append(holder[0])
        test_labels = [manifest.label_index(u.label) for u in fold_utterances(manifest, fold)[2]]
        preds = torch.stack(probs).mean(0).argmax(-1).tolist()
        ua = compute_metrics(test_labels, preds, len(manifest.labels))["ua"]
        return float(np.mean(vals)), ua, w
    labels = {u.id: manifest.label_index(u.label) for u in manifest.utterances}
    train, val, test = ([u.id for u in p] for p in fold_utterances(manifest, fold))
    if row.get("trainval"):  # as the probe: the validation speakers train too (fixed epochs)
        train = train + val
    n_classes = len(manifest.labels)
    kinds = TEACHER_KINDS if variant == FULL else ()
    teachers = load_fold_teachers(fold_dir, kinds) if kinds else {}
    d_l = teachers["linguistic"].embeddings.shape[1] if teachers else 384
    d_p = teachers["prosodic"].embeddings.shape[1] if teachers else 128
    scfg = dataclasses.replace(
        cfg.student,
        encoder=ENCODERS[row["enc"]],
        trainable_layers=int(row.get("trainable", 0)),
        layer_weights=row["layers"] == "mix",
        layer_norm=row.get("layer_norm", False),
        pooled_norm=row.get("pooled_norm", False),
        pooling=row["pooling"],
        dropout=float(row.get("dropout", cfg.student.dropout)),
        projection_hidden=int(row.get("proj", cfg.student.projection_hidden)),
        classifier_hidden=int(row.get("cls", cfg.student.classifier_hidden)),
    )
    scfg = dataclasses.replace(scfg, **row.get("student", {}))  # any other StudentConfig field
    # the pipeline's schedule (distill.epochs for a student with teachers) unless the row sets it
    v = get_variant(FULL if variant == FULL else BASELINE)
    epochs = int(row.get("epochs", v.student_epochs(cfg.distill, cfg.student.optim.epochs)))
    optim = dataclasses.replace(
        cfg.student.optim,
        epochs=epochs,
        lr=float(row.get("lr", cfg.student.optim.lr)),
        weight_decay=float(row.get("wd", cfg.student.optim.weight_decay)),
        batch_size=int(row.get("bs", cfg.student.optim.batch_size)),
        class_weights=bool(row.get("cw", cfg.student.optim.class_weights)),
    )
    optim = dataclasses.replace(optim, **row.get("optim", {}))  # any other OptimConfig field
    torch.manual_seed(seed)
    student = build_student(scfg, n_classes, d_l, d_p)
    if row.get("time_mask") or row.get("channel_mask"):
        student.augment = StateAugment(row.get("time_mask", 0.0), row.get("channel_mask", 0.0))
    weights = None
    dcfg = cfg.distill
    if "alpha" in row:
        dcfg = dataclasses.replace(dcfg, alpha=row["alpha"], beta=row["beta"], gamma=row["beta"])
    dcfg = dataclasses.replace(dcfg, **row.get("distill", {}))  # any other DistillConfig field
    if variant == "plain":
        dcfg = dataclasses.replace(dcfg, use_linguistic=False, use_prosodic=False)
    else:
        y_val = [labels[i] for i in val]
        val_ua = teacher_validation_ua(teachers, val, y_val, n_classes)
        rule = row.get("weighting", dcfg.teacher_weighting)
        weights = teacher_weights(rule, val_ua, n_classes, len(val), student_val_ua=plain_val)
    class_weights = class_weights_if_needed(
        [labels[i] for i in train], n_classes, optim.class_weights
    )
    module = StudentModule(
        student,
        dcfg,
        optim,
        n_classes,
        seed=seed,
        teacher_weights=weights,
        mixup=row.get("mixup", 0.0),
        class_weights=class_weights,
    )
    sel = state_slice(row, student.encoder.num_layers)
    if row["layers"] == "mix" and not row.get("trainable"):  # every state up to pool_layer
        sel = slice(0, student.depth + 1)
    if row.get("lpft"):  # "frozen" | "train": the probe's fit added to the logits (LP-FT)
        lin = fit_probe_skip(student, train, val, states, labels, sel, n_classes)
        add_skip(student, lin, row["lpft"] == "train")
    params = [p for p in student.parameters() if p.requires_grad]
    steps = total_steps(len(train), optim.batch_size, epochs)
    opt = configure_adamw(student_param_groups(student, optim), optim, steps)
    optimizer, sched = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    gen = torch.Generator().manual_seed(seed)
    ema = None
    if row.get("ema"):  # exponential moving average of the weights (and BN buffers)
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(
            student, multi_avg_fn=get_ema_multi_avg_fn(float(row["ema"])), use_buffers=True
        )
    best = (-1.0, 0.0)
    student.train()
    for epoch in range(epochs):
        for _, batch in batches(train, states, labels, teachers, kinds, sel, optim.batch_size, gen):
            # "bf16": the forward pass under CPU autocast, as trainer.precision bf16-mixed
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(row.get("bf16"))):
                out = module.mixup_loss(batch) if module.mixup > 0 else module.loss(batch)
            optimizer.zero_grad()
            out.total.backward()
            torch.nn.utils.clip_grad_norm_(params, optim.grad_clip)
            optimizer.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(student)
        if row.get("pbn") and epoch == epochs - 1:  # precise BN: statistics of clean clips
            from emodistill.training.precise_bn import precise_batch_norm

            clean = batches(train, states, labels, teachers, kinds, sel, optim.batch_size, gen)
            precise_batch_norm(student, (b for _, b in clean), module.run_student)
        ev = student if ema is None else ema.module
        v = evaluate(ev, val, states, labels, sel, n_classes)
        # select: best validation UA (as distill), or the last epoch (no selection noise)
        if v > best[0] or row.get("select") == "last":
            best = (v, evaluate(ev, test, test_states, labels, sel, n_classes, row.get("_probs")))
    return best[0], best[1], weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--run", required=True, help="run folder with trained teachers per fold")
    ap.add_argument("--config", default="demo")
    ap.add_argument("--folds-groups", type=int, default=None, help="override folds.groups")
    ap.add_argument("--val-speakers", type=int, default=None)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--folds", default="all", help="'all' or comma-separated fold ids")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--weighting", default=None, help="override distill.teacher_weighting")
    ap.add_argument(
        "--extra",
        default=None,
        help='more rows as JSON, e.g. \'{"tiny-l3-mean-bn": {"enc": "tiny", "layers": "last", '
        '"layer": 3, "pooling": "mean", "pooled_norm": true}}\'',
    )
    ap.add_argument(
        "--plain-only", action="store_true", help="screen: train only the plain student"
    )
    ap.add_argument("--json", default=None, help="append each row's result to this JSON lines file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.extra:
        ROWS.update(json.loads(args.extra))
    cfg = load_config(args.config)
    if args.folds_groups:
        cfg = cfg.override({"folds.groups": args.folds_groups})
    if args.val_speakers:
        cfg = cfg.override({"folds.val_speakers": args.val_speakers})
    if args.weighting:
        cfg = cfg.override({"distill.teacher_weighting": args.weighting})
    manifest = load_manifest(args.manifest)
    folds = config_folds(manifest, cfg.folds)
    if args.folds != "all":
        folds = [f for f in folds if f.id in args.folds.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    run = Path(args.run)
    teacher_ua = {}
    for kind in ("linguistic", "prosodic"):
        paths = [layout.teacher_result_path(layout.fold_dir(run, f.id), kind) for f in folds]
        uas = [json.loads(p.read_text())["ua"] for p in paths if p.is_file()]
        teacher_ua[kind] = 100 * float(np.mean(uas)) if uas else float("nan")
    print(
        f"folds {len(folds)} x seeds {seeds}; teachers (test UA): "
        f"T_L {teacher_ua['linguistic']:.2f}, T_P {teacher_ua['prosodic']:.2f}",
        flush=True,
    )
    print(f"{'row':26s} {'plain':>6s} {'EmoD':>6s} {'gain':>6s} {'95% CI':>16s}  weights  s")
    loaded: dict[str, dict] = {}
    for name in args.rows.split(","):
        row = ROWS[name]
        if row["enc"] not in loaded:
            loaded.clear()
            loaded[row["enc"]] = load_states(
                manifest, ENCODERS[row["enc"]], cfg.student.max_seconds
            )
        states = loaded[row["enc"]]
        test_states = None
        if row.get("test_seconds"):  # test clips cropped as the pipeline does (EVAL_MAX_SECONDS)
            test_states = load_states(manifest, ENCODERS[row["enc"]], float(row["test_seconds"]))
        start = time.perf_counter()
        plain, full, clusters, ws = [], [], [], []
        for f in folds:
            for seed in seeds:
                pv, pt, _ = train_one(
                    cfg, row, f, run / f.id, manifest, states, seed, "plain", None, test_states
                )
                if args.plain_only:
                    ft, w = pt, None
                else:
                    _, ft, w = train_one(
                        cfg, row, f, run / f.id, manifest, states, seed, FULL, pv, test_states
                    )
                plain.append(100 * pt)
                full.append(100 * ft)
                clusters.append(f.id)
                ws.append(w)
        d = np.array(full) - np.array(plain)
        lo, hi = cluster_bootstrap_ci(d, clusters)
        wl = np.mean([w["linguistic"] for w in ws if w]) if any(ws) else 1.0
        wp = np.mean([w["prosodic"] for w in ws if w]) if any(ws) else 1.0
        secs = time.perf_counter() - start
        print(
            f"{name:26s} {np.mean(plain):6.2f} {np.mean(full):6.2f} {d.mean():+6.2f} "
            f"[{lo:+6.2f}, {hi:+6.2f}]  {wl:.2f}/{wp:.2f}  {secs:.0f}",
            flush=True,
        )
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(
                    json.dumps(
                        {
                            "row": name,
                            **row,
                            "manifest": args.manifest,
                            "weighting": row.get("weighting", cfg.distill.teacher_weighting),
                            "plain": plain,
                            "full": full,
                            "folds": clusters,
                            "gain": float(d.mean()),
                            "ci95": [lo, hi],
                            "weights_mean": {"linguistic": float(wl), "prosodic": float(wp)},
                            "teachers": teacher_ua,
                            "seconds": secs,
                        }
                    )
                    + "\n"
                )


if __name__ == "__main__":
    main()

"""The paper's scale, measured: the ``paper-hubert-*`` students on an IEMOCAP-sized corpus.

Usage::

    python bench/paper_scale.py [--model base|large|both] [--steps 3] [--batch-size N]
                                [--workers N] [--device auto|cpu|cuda] [--threads N]

An IEMOCAP-sized corpus is drawn on the fly: 5,531 clip lengths, log-normal like IEMOCAP's
(median 3.5 s, mean about 4.5 s, 0.6 to 20 s), random audio generated in memory by the data
loader's workers (no files). The student of the preset (``paper-hubert-base`` /
``paper-hubert-large``) is built around HuBERT base / large with **random weights** from the
published configurations (``facebook/hubert-base-ls960``, ``facebook/hubert-large-ll60k``; no
download is needed, the cost of a step does not depend on the weights). Each step is the real
training step of ``distill``: the preset's length-grouped batches and crop (``max_seconds``),
the full EmoDistill loss against cached teacher outputs, backward, AdamW, under the preset's
precision (bf16-mixed on a GPU; fp32 on a CPU).

Printed per model: data time (waiting for the loader) and compute time per step, clips/s,
peak memory, bf16-vs-fp32 agreement of the logits on one batch (eval mode), and the projected
hours of the paper's 10-fold protocol: eGeMAPS extraction once, per fold the two teachers
(T_L: BERT-base, T_P: the preset's ResNet, each timed here on one batch with random weights)
and the student, every epoch run (early stopping only shortens it). On a CPU the default batch
(2) and crop (2 s) are small and the projection is CPU hours: an order of magnitude, not a GPU
number.
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from emodistill.audio import SAMPLE_RATE
from emodistill.config import load_config
from emodistill.models.losses import emodistill_loss
from emodistill.training.data import UtteranceBatchSampler, collate_batch

LABELS = ["neutral", "happy", "angry", "sad"]
N_CLIPS = 5531  # IEMOCAP, 4 classes (happy = happy + excited)
N_SPEAKERS = 10
MEDIAN_S, MEAN_S, MIN_S, MAX_S = 3.5, 4.5, 0.6, 20.0
D_LINGUISTIC = 768  # bert-base-uncased, the paper's T_L

# The published configurations (config.json of the hub models), as HubertConfig arguments.
HUBERT = {
    "base": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        conv_bias=False,
    ),
    "large": dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        conv_bias=True,
    ),
}
UPSTREAM = {"base": "facebook/hubert-base-ls960", "large": "facebook/hubert-large-ll60k"}


def iemocap_lengths(n: int = N_CLIPS, seed: int = 0) -> np.ndarray:
    """(n,) clip lengths in seconds: log-normal with IEMOCAP's median and mean, clipped."""
    sigma = math.sqrt(2.0 * math.log(MEAN_S / MEDIAN_S))  # mean = median * exp(sigma^2 / 2)
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(math.log(MEDIAN_S), sigma, n), MIN_S, MAX_S)


class RandomAudio(torch.utils.data.Dataset):
    """Items shaped like ``DistillDataset``'s: random audio of the drawn lengths (training crop
    of ``max_seconds``), a label and random cached teacher outputs."""

    def __init__(self, seconds: np.ndarray, max_seconds: float, d_prosodic: int, seed: int = 0):
        self.samples = (seconds * SAMPLE_RATE).astype(np.int64)
        self.max_samples = int(max_seconds * SAMPLE_RATE)
        self.lengths = np.minimum(self.samples, self.max_samples)
        self.d_prosodic = d_prosodic
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        i, epoch, valid = key
        rng = np.random.default_rng([self.seed, epoch, i])
        n = int(self.lengths[i])
        wav = (0.1 * rng.standard_normal(n)).astype(np.float32)
        emb = {"linguistic": D_LINGUISTIC, "prosodic": self.d_prosodic}
        return {
            "wav": torch.from_numpy(wav),
            "label": int(i % len(LABELS)),
            "valid": bool(valid),
            "index": int(i),
            "teacher_logits": {k: torch.randn(len(LABELS)) for k in emb},
            "teacher_emb": {k: torch.randn(d) for k, d in emb.items()},
        }


def build_paper_student(size: str, cfg):
    """The preset's student around a random HuBERT of the published ``size`` configuration."""
    from emodistill.models.encoders.loading import build_encoder_from_config
    from emodistill.models.student import EmoDistillStudent

    encoder = build_encoder_from_config(
        {
            "kind": "transformers",
            "config": {"model_type": "hubert", **HUBERT[size]},
            "do_normalize": size == "large",  # as the two models' feature extractors
            "freeze_feature_encoder": cfg.student.freeze_feature_encoder,
            "source": f"random weights, {UPSTREAM[size]} configuration",
        }
    )
    s = cfg.student
    return EmoDistillStudent(
        encoder,
        num_labels=len(LABELS),
        d_linguistic=D_LINGUISTIC,
        d_prosodic=cfg.prosodic.embedding_dim,
        projection_hidden=s.projection_hidden,
        classifier_hidden=s.classifier_hidden,
        dropout=s.dropout,
        pooling=s.pooling,
        layer_weights=s.layer_weights,
        trainable_layers=None if s.trainable_layers == "all" else int(s.trainable_layers),
        layer_norm=s.layer_norm,
        pooled_norm=s.pooled_norm,
    )


def _to(batch, device):
    out = {}
    for k, v in batch.items():
        if isinstance(v, dict):
            out[k] = {kk: vv.to(device, non_blocking=True) for kk, vv in v.items()}
        else:
            out[k] = v.to(device, non_blocking=True)
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_bytes(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30, "GPU GiB (allocated)"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "GiB process RSS"


def _loss(student, batch, dcfg):
    out = student(batch["wav"], batch["lengths"])
    s_emb = {"linguistic": out.emb_linguistic, "prosodic": out.emb_prosodic}
    return emodistill_loss(
        out.logits.float(),
        batch["labels"],
        dcfg,
        batch["teacher_logits"],
        batch["teacher_emb"],
        {k: v.float() for k, v in s_emb.items()},
    ), out


@dataclass
class StudentRun:
    size: str
    batch: int
    crop_s: float
    params_m: float
    data_s: float
    compute_s: float
    clips_per_s: float
    audio_s_per_s: float
    peak: float
    peak_unit: str
    max_abs_logit_diff: float
    argmax_agree: float
    loss_rel_diff: float
    precision: str


def run_student(size: str, args, device: torch.device) -> tuple[StudentRun, object]:
    cfg = load_config(f"paper-hubert-{size}")
    batch_size = args.batch_size or (cfg.student.optim.batch_size if device.type == "cuda" else 2)
    bf16 = device.type == "cuda" and cfg.trainer.precision.startswith("bf16")
    torch.manual_seed(0)
    student = build_paper_student(size, cfg).to(device).train()
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.student.optim.lr, fused=device.type == "cuda")
    seconds = iemocap_lengths()
    n_train = round(N_CLIPS * (N_SPEAKERS - 2) / N_SPEAKERS)  # one test, one validation speaker
    crop = args.max_seconds or (cfg.student.max_seconds if device.type == "cuda" else 2.0)
    data = RandomAudio(seconds[:n_train], crop, cfg.prosodic.embedding_dim)
    sampler = UtteranceBatchSampler(data.lengths, batch_size, shuffle=True, seed=0)
    workers = cfg.trainer.num_workers if args.workers is None else args.workers
    if device.type == "cpu" and args.workers is None:
        workers = 0  # the CPU computes; workers would only compete for its cores
    loader = torch.utils.data.DataLoader(
        data,
        batch_sampler=sampler,
        collate_fn=collate_batch,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    it = iter(loader)
    data_t, compute_t, clips, audio = [], [], 0, 0.0
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        batch = _to(next(it), device)
        _sync(device)
        t1 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = _loss(student, batch, cfg.distill)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()
        _sync(device)
        t2 = time.perf_counter()
        if step >= args.warmup:
            data_t.append(t1 - t0)
            compute_t.append(t2 - t1)
            clips += int(batch["labels"].shape[0])
            audio += float(batch["lengths"].sum()) / SAMPLE_RATE
    peak, unit = _peak_bytes(device)

    # bf16 autocast vs fp32 on one batch (eval mode: no dropout, same weights).
    student.eval()
    with torch.no_grad():
        loss32, out32 = _loss(student, batch, cfg.distill)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss16, out16 = _loss(student, batch, cfg.distill)
    l32, l16 = out32.logits.float(), out16.logits.float()
    total = sum(data_t) + sum(compute_t)
    result = StudentRun(
        size=size,
        batch=batch_size,
        crop_s=crop,
        params_m=sum(p.numel() for p in params) / 1e6,
        data_s=statistics.median(data_t),
        compute_s=statistics.median(compute_t),
        clips_per_s=clips / total,
        audio_s_per_s=audio / total,
        peak=peak,
        peak_unit=unit,
        max_abs_logit_diff=float((l32 - l16).abs().max() / l32.abs().max().clamp(min=1e-12)),
        argmax_agree=float((l32.argmax(1) == l16.argmax(1)).float().mean()),
        loss_rel_diff=abs(float(loss16.total) - float(loss32.total)) / abs(float(loss32.total)),
        precision="bf16-mixed" if bf16 else "fp32",
    )
    del student, optimizer
    return result, cfg


def teacher_clips_per_s(cfg, device: torch.device, batch: int, steps: int) -> dict[str, float]:
    """Training clips/s of T_L (BERT-base sizes, 24 tokens) and T_P (the preset's ResNet over
    LLDs of the median clip length), random weights, one batch repeated."""
    from transformers import BertConfig, BertModel

    from emodistill.models.prosodic import ProsodicNetConfig, build_prosodic_net

    out = {}
    bert = BertModel(BertConfig()).to(device).train()
    head = torch.nn.Linear(768, len(LABELS)).to(device)
    opt = torch.optim.AdamW([*bert.parameters(), *head.parameters()], lr=2e-5)
    ids = torch.randint(1000, 30000, (batch, 24), device=device)
    mask = torch.ones_like(ids)
    y = torch.arange(batch, device=device) % len(LABELS)

    def bert_step():
        logits = head(bert(input_ids=ids, attention_mask=mask).pooler_output)
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    out["linguistic"] = batch / _timed(bert_step, steps, device)
    pros = cfg.prosodic
    net = build_prosodic_net(ProsodicNetConfig.from_prosodic_config(pros, LABELS)).to(device)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=pros.optim.lr)
    frames = int(MEDIAN_S * 100)
    llds = torch.randn(batch, frames, 25, device=device)
    lengths = torch.full((batch,), frames, device=device)

    def resnet_step():
        logits, _ = net(llds, lengths)
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    out["prosodic"] = batch / _timed(resnet_step, steps, device)
    return out


def _timed(fn, steps: int, device: torch.device) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(max(1, steps)):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def egemaps_rtf(clips: int = 2) -> float:
    """Seconds of eGeMAPS extraction (opensmile) per second of audio, on random audio."""
    from emodistill.features import egemaps_llds

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(int(MEDIAN_S * SAMPLE_RATE))).astype(np.float32)
    egemaps_llds(x, SAMPLE_RATE)
    t0 = time.perf_counter()
    for _ in range(clips):
        egemaps_llds(x, SAMPLE_RATE)
    return (time.perf_counter() - t0) / (clips * MEDIAN_S)


def projected_hours(run: StudentRun, cfg, teachers: dict[str, float], rtf: float) -> dict:
    """Hours of the 10-fold protocol, every epoch run (early stopping only shortens it).
    Evaluation passes are counted at a third of a training step's cost per clip (forward only).
    """
    n_train = N_CLIPS * (N_SPEAKERS - 2) / N_SPEAKERS
    n_eval = N_CLIPS / N_SPEAKERS  # validation speaker; the test speaker once
    s, ling, pros = cfg.student.optim, cfg.linguistic.optim, cfg.prosodic.optim

    def stage(clips_per_s: float, epochs: int) -> float:
        train = n_train * epochs / clips_per_s
        evaluate = (n_eval * epochs + n_eval) / (3 * clips_per_s)
        return (train + evaluate) / 3600

    # The student's cost per clip grows with its audio: its clips/s at the preset's crop is
    # the measured audio seconds per second over the mean cropped clip (equal to the measured
    # clips/s when the bench ran at the preset's crop).
    mean_clip = float(np.minimum(iemocap_lengths(), cfg.student.max_seconds).mean())
    per_fold = {
        "student": stage(run.audio_s_per_s / mean_clip, s.epochs),
        "T_L": stage(teachers["linguistic"], ling.epochs),
        "T_P": stage(teachers["prosodic"], pros.epochs),
    }
    features = N_CLIPS * float(iemocap_lengths().mean()) * rtf / 3600
    total = features + N_SPEAKERS * sum(per_fold.values())
    return {"per_fold": per_fold, "features": features, "total": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["base", "large", "both"], default="both")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (CPU 3, GPU 20)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: the preset's on a GPU, 2 on a CPU"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="training crop; default: the preset's (8 s) on a GPU, 2 s on a CPU",
    )
    parser.add_argument("--workers", type=int, default=None, help="default: preset (GPU), 0 (CPU)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    args.steps = args.steps or (20 if device.type == "cuda" else 3)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lengths = iemocap_lengths()
    print(
        f"device: {name} ({torch.get_num_threads()} CPU threads); corpus: {N_CLIPS} clips, "
        f"median {np.median(lengths):.2f} s, mean {lengths.mean():.2f} s, max "
        f"{lengths.max():.1f} s ({lengths.sum() / 3600:.2f} h); random weights, published "
        "HuBERT configurations"
    )
    sizes = ["base", "large"] if args.model == "both" else [args.model]
    rows = []
    teachers: dict[str, float] = {}
    rtf = egemaps_rtf()
    for size in sizes:
        run, cfg = run_student(size, args, device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if not teachers:  # the same T_L (bert-base) and T_P (ResNet) in both presets
            batch = run.batch if device.type == "cpu" else cfg.linguistic.optim.batch_size
            teachers = teacher_clips_per_s(cfg, device, batch, max(1, args.steps // 3))
        rows.append((run, teachers, projected_hours(run, cfg, teachers, rtf)))

    print(f"\n{args.steps} timed steps after {args.warmup} warm-up (medians per step)\n")
    header = (
        f"{'student':14s} {'batch':>5s} {'crop s':>6s} {'train M':>8s} {'prec':>10s} "
        f"{'data s':>8s} {'compute s':>9s} {'clips/s':>8s} {'audio s/s':>9s} {'peak':>7s}  "
        f"{'bf16 vs fp32: max|dz|/max|z|':>28s} {'argmax':>6s} {'loss rel':>8s}"
    )
    print(header)
    print("-" * len(header))
    for run, _, _ in rows:
        print(
            f"{'hubert-' + run.size:14s} {run.batch:5d} {run.crop_s:6.1f} {run.params_m:8.1f} "
            f"{run.precision:>10s} {run.data_s:8.3f} {run.compute_s:9.3f} {run.clips_per_s:8.2f} "
            f"{run.audio_s_per_s:9.1f} {run.peak:7.2f}  {run.max_abs_logit_diff:28.4f} "
            f"{run.argmax_agree:6.2f} {run.loss_rel_diff:8.4f}"
        )
    print(f"peak: {rows[0][0].peak_unit}")
    print("\nprojected hours, 10-fold leave-one-speaker-out, every epoch of the preset run:")
    print(
        f"{'student':14s} {'features':>8s} {'T_L/fold':>8s} {'T_P/fold':>8s} "
        f"{'S/fold':>8s} {'total':>8s}   (teacher clips/s: T_L, T_P)"
    )
    for run, teachers, hours in rows:
        pf = hours["per_fold"]
        print(
            f"{'hubert-' + run.size:14s} {hours['features']:8.2f} {pf['T_L']:8.2f} "
            f"{pf['T_P']:8.2f} {pf['student']:8.2f} {hours['total']:8.1f}   "
            f"({teachers['linguistic']:.1f}, {teachers['prosodic']:.1f})"
        )
    if device.type == "cpu":
        print(
            "\nCPU: batch, crop and threads are this machine's, so the hours are CPU hours (an "
            "order of magnitude; the student's scaled to the preset's crop by audio seconds); "
            "run on a GPU for the paper's batch, crop and bf16."
        )


if __name__ == "__main__":
    main()

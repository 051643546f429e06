"""Benchmark one student training step: plain fine-tuning vs EmoDistill with cached teacher
outputs vs EmoDistill running both teachers online.

Usage::

    python bench/train_step.py [--encoder embedded:whisper-tiny.en] [--batch 8] [--seconds 3]
                               [--steps 10] [--threads 2]

Every variant runs the same student on the same batch: forward, loss, backward, AdamW step.

* ``plain``: cross-entropy only (the "no teachers" ablation).
* ``cached``: the full EmoDistill loss with teacher logits and embeddings read from tensors in
  memory (what ``distill`` does: the teacher cache is memory-mapped).
* ``online``: the full loss with both teachers run in the step: the linguistic teacher
  (the embedded all-MiniLM-L6-v2 + classifier, on 8 transcripts) and the prosodic teacher
  (opensmile eGeMAPS LLDs of each clip + a ProsodicResNet forward), both without gradients.

Variants are interleaved step by step (plain, cached, online, plain, ...) so that load from
other processes on a shared machine hits them alike; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from emodistill.audio import SAMPLE_RATE
from emodistill.config import DistillConfig, StudentConfig
from emodistill.models.losses import emodistill_loss
from emodistill.models.student import build_student

LABELS = ["neutral", "happy", "angry", "sad"]
TRANSCRIPTS = [
    "I can't believe you did that again.",
    "That is the best news I have heard all year!",
    "Leave me alone, I don't want to talk about it.",
    "The meeting is moved to three o'clock.",
    "We finally made it, this is wonderful.",
    "Why would you ever say something like that?",
    "I miss her so much, everything feels empty.",
    "Please put the folder on my desk.",
]


def synth_batch(batch: int, seconds: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Voiced-like signals (harmonics of a wandering F0 plus noise): (B, N) float32, lengths."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    wavs = []
    for _ in range(batch):
        f0 = rng.uniform(100, 250) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * t))
        wavs.append(0.1 * x + 0.01 * rng.standard_normal(n))
    wav = torch.from_numpy(np.stack(wavs).astype(np.float32))
    return wav, torch.full((batch,), n, dtype=torch.long)


def build_teachers(d_prosodic: int):
    """(linguistic teacher, prosodic teacher, note) - real classes from emodistill.models."""
    from emodistill.models.linguistic import LinguisticTeacher
    from emodistill.models.prosodic import ProsodicNetConfig, ProsodicResNet

    text = LinguisticTeacher.from_encoder("embedded:all-minilm-l6-v2", LABELS).eval()
    prosodic = ProsodicResNet(ProsodicNetConfig(labels=LABELS, embedding_dim=d_prosodic)).eval()
    return text, prosodic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="embedded:whisper-tiny.en")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-online", action="store_true", help="skip the online-teacher run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from emodistill.features import egemaps_llds

    text_teacher, prosodic_teacher = build_teachers(d_prosodic=128)
    d_l, d_p = text_teacher.embedding_dim, prosodic_teacher.embedding_dim
    student = build_student(StudentConfig(encoder=args.encoder), len(LABELS), d_l, d_p).train()
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    n_train = sum(p.numel() for p in params)

    wav, lengths = synth_batch(args.batch, args.seconds)
    labels = torch.arange(args.batch) % len(LABELS)
    texts = [TRANSCRIPTS[i % len(TRANSCRIPTS)] for i in range(args.batch)]
    cfg = DistillConfig()
    plain_cfg = DistillConfig(use_linguistic=False, use_prosodic=False)

    def teachers_online():
        with torch.no_grad():
            tokens = text_teacher.encode(texts)
            z_l, e_l = text_teacher(**tokens)
            llds = [
                torch.from_numpy(egemaps_llds(w[: int(n)].numpy(), SAMPLE_RATE))
                for w, n in zip(wav, lengths, strict=True)
            ]
            lld_len = torch.tensor([x.shape[0] for x in llds])
            padded = torch.nn.utils.rnn.pad_sequence(llds, batch_first=True)
            z_p, e_p = prosodic_teacher(padded, lld_len)
        return {"linguistic": z_l, "prosodic": z_p}, {"linguistic": e_l, "prosodic": e_p}

    cached_logits, cached_emb = teachers_online()  # "the cache": tensors already in memory

    def step(kind: str) -> tuple[float, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        if kind == "online":
            t_logits, t_emb = teachers_online()
        else:
            t_logits, t_emb = cached_logits, cached_emb
        out = student(wav, lengths)
        if kind == "plain":
            loss = emodistill_loss(out.logits, labels, plain_cfg).total
        else:
            loss = emodistill_loss(
                out.logits,
                labels,
                cfg,
                t_logits,
                t_emb,
                {"linguistic": out.emb_linguistic, "prosodic": out.emb_prosodic},
            ).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start, time.process_time() - cpu_start

    kinds = ["plain", "cached"] + ([] if args.no_online else ["online"])
    for _ in range(args.warmup):
        for kind in kinds:
            step(kind)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.steps):
        for kind in kinds:
            wall, used = step(kind)
            times[kind].append(wall)
            cpu[kind].append(used)

    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(
        f"student: {args.encoder} ({n_train / 1e6:.2f}M trainable parameters), batch "
        f"{args.batch} x {args.seconds:g} s, {args.threads} threads, {args.steps} timed steps "
        "per variant (interleaved)"
    )
    print("  wall = elapsed time; cpu = process CPU time (all threads), which load from other")
    print("  processes on a shared machine inflates far less than wall time")
    for k in kinds:
        print(
            f"  {k:7s} wall median {med[k]:.3f} s (min {min(times[k]):.3f}, max "
            f"{max(times[k]):.3f}); cpu median {med_cpu[k]:.3f} s"
        )
    mins = {k: min(v) for k, v in times.items()}
    for name, m in (("wall", med), ("wall min", mins), ("cpu", med_cpu)):
        print(f"[{name}] cached-KD / plain  = {m['cached'] / m['plain']:.3f}  (target <= 1.05)")
        if "online" in m:
            print(f"[{name}] online    / plain  = {m['online'] / m['plain']:.3f}")
            print(f"[{name}] online    / cached = {m['online'] / m['cached']:.3f}")

    # The only work KD adds to a step is the loss itself (the heads are in the graph either
    # way: their concatenation feeds the classifier). Time it alone, many times, on the
    # student's real outputs: a load-independent estimate of the overhead.
    with torch.no_grad():
        out = student(wav, lengths)
    leaves = [t.detach().requires_grad_() for t in out]

    def loss_only(kd: bool) -> float:
        start = time.perf_counter()
        if kd:
            s_emb = {"linguistic": leaves[1], "prosodic": leaves[2]}
            loss = emodistill_loss(leaves[0], labels, cfg, cached_logits, cached_emb, s_emb)
        else:
            loss = emodistill_loss(leaves[0], labels, plain_cfg)
        loss.total.backward()
        return time.perf_counter() - start

    overhead = statistics.median(loss_only(True) for _ in range(200))
    overhead -= statistics.median(loss_only(False) for _ in range(200))
    estimate = (mins["plain"] + overhead) / mins["plain"]
    print(
        f"KD loss overhead (loss + its backward, full minus CE-only): {overhead * 1e3:.3f} ms "
        f"per step -> estimated cached-KD / plain = {estimate:.4f}"
    )


if __name__ == "__main__":
    main()

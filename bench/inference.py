"""Inference cost of the speech-only student, side by side in one run.

(a) ``predict`` over a folder (file discovery, reading, resampling, batching, output) vs the
    bare forward time of the same network on the same, already-loaded audio. Target <= 1.2.
(b) Cost per audio second of the student vs the multimodal pipeline it replaces: faster-whisper
    tiny.en ASR + the MiniLM linguistic teacher on the transcript + opensmile eGeMAPS LLDs +
    the ProsodicResNet + a speech encoder of the same size (the student's). Target <= 0.5.
(c) ``rss``: peak RSS of ``emodistill predict --segment`` on a long generated file (default one
    hour), measured with /usr/bin/time -v in a child process.

Weights do not matter for timing: the student is the embedded Whisper tiny.en encoder with
random heads (``build_student`` with a default ``StudentConfig``); the prosodic network is
randomly initialised at the size the demo preset trains. Clips are espeak-ng sentences (real
speech, so the ASR decodes real words) at 22.05 kHz, so predict also pays for resampling.

(d) ``--compare``: one run, same clips, one child process per row (so each row's peak RSS is
    its own): the student under torch, ONNX float and ONNX int8; the same student head on the
    encoders users would pick instead, built with random weights from their published
    configurations (cost does not depend on weights): HuBERT-base, wav2vec2-base (95 M),
    data2vec-audio-base (the emotion2vec-base architecture), HuBERT-large (317 M); and a row for
    the student on ``embedded:whisper-base``, skipped while that id does not resolve. Per row:
    cost per audio second (``predict_proba``, one clip per call) and its ratio to the torch
    student, peak RSS, and streaming latency (``stream.StreamSession`` fed 100 ms chunks: the
    time from the chunk that completes a window to its event, p50/p95).

    .venv/bin/python bench/inference.py              # (a) and (b)
    .venv/bin/python bench/inference.py --rss 60     # (c) with a 60-minute file
    .venv/bin/python bench/inference.py --compare    # (d)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

LABELS = ["neutral", "happy", "angry", "sad"]
SENTENCES = [
    "I can't believe you did that again.",
    "The meeting is moved to Thursday afternoon.",
    "This is the best news I have heard all year!",
    "Please leave me alone for a while.",
    "Why would anyone think that was a good idea?",
    "We walked along the river until the sun went down and the air grew cold.",
    "Okay.",
    "I lost my keys, my wallet, and my phone in one single day.",
    "Thank you so much, really, this means a lot to me.",
    "Nobody told me the train was cancelled, and now I am late for everything.",
    "The report has twelve pages and three appendices.",
    "Stop shouting at me!",
]


def synth_corpus(folder: Path, n: int) -> list[Path]:
    """n espeak-ng clips (22.05 kHz mono wav) of varied length in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    espeak = shutil.which("espeak-ng")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"clip{i:03d}.wav"
        text = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(1 + i % 3))
        if espeak:
            subprocess.run(
                [espeak, "-w", str(path), "-s", str(150 + 10 * (i % 5)), text],
                check=True,
                capture_output=True,
            )
        else:  # no espeak-ng: noise-modulated tones (the ASR then transcribes little)
            sr, sec = 22050, 1.5 + 3.0 * rng.random()
            t = np.arange(int(sr * sec)) / sr
            x = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
            sf.write(path, x.astype(np.float32), sr)
        paths.append(path)
    return paths


def build_student_folder(folder: Path) -> None:
    """Embedded Whisper tiny.en student (default StudentConfig, random heads) as a model folder."""
    from emodistill.config import StudentConfig
    from emodistill.models.student import build_student
    from emodistill.models.student_folder import save_student

    student = build_student(StudentConfig(), len(LABELS), d_linguistic=384, d_prosodic=128)
    save_student(student.eval(), folder, LABELS)


def main_speed(args: argparse.Namespace) -> None:
    import torch

    from emodistill.audio import load_audio
    from emodistill.cli.predict import predict_entries
    from emodistill.inference.batching import length_batches as _batches
    from emodistill.inference.batching import pad_batch
    from emodistill.inference.model import EmoDistill

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    work = Path(tempfile.mkdtemp(prefix="emodistill-bench-"))
    try:
        paths = synth_corpus(work / "audio", args.clips)
        build_student_folder(work / "model")
        t0 = time.perf_counter()
        model = EmoDistill.from_pretrained(work / "model")
        load_s = time.perf_counter() - t0
        signals = [load_audio(p) for p in paths]
        audio_s = sum(s.size for s in signals) / 16000
        net = model.module

        def bare_each() -> None:
            with torch.inference_mode():
                for s in signals:
                    net(torch.from_numpy(s)[None], torch.tensor([s.size]))

        # The batches predict forms (sorted, at most MAX_PADDING padding), without the rest.
        order = sorted(range(len(signals)), key=lambda i: -signals[i].size)
        sizes = [signals[i].size for i in order]
        batches = list(_batches(order, sizes, args.batch_size, model.pad_invariant))

        def bare_batched() -> None:
            with torch.inference_mode():
                for idx in batches:
                    wav, lengths = pad_batch([signals[i] for i in idx])
                    net(torch.from_numpy(wav), torch.from_numpy(lengths))

        def predict_folder() -> None:
            entries = predict_entries(model, [str(work / "audio")], batch_size=args.batch_size)
            assert len(entries) == len(paths) and all("label" in e for e in entries)

        # ---- (b) multimodal pipeline on the same files
        multi = multimodal_pipeline(paths, threads)
        multi()  # warm-up

        # Interleave the measurements so machine noise hits them alike; report median and min
        # (the min is the least disturbed run on a shared machine).
        runs: dict[str, list[float]] = {"each": [], "batched": [], "predict": [], "multi": []}
        stage: list[dict[str, float]] = []
        for fn in (bare_each, bare_batched, predict_folder):
            fn()  # warm-up
        for _ in range(args.repeats):
            for key, fn in (
                ("each", bare_each),
                ("batched", bare_batched),
                ("predict", predict_folder),
                ("multi", multi),
            ):
                t = time.perf_counter()
                fn()
                runs[key].append(time.perf_counter() - t)
            stage.append(dict(multi.parts))
        med = {k: statistics.median(v) for k, v in runs.items()}
        low = {k: min(v) for k, v in runs.items()}
        parts = {k: statistics.median(s[k] for s in stage) for k in stage[0]}
        speech_share = statistics.median(
            s["speech encoder (same as student)"] / sum(s.values()) for s in stage
        )

        def row(name: str, key: str) -> str:
            return f"    {name:<44s} {med[key]:8.3f} s  (min {low[key]:.3f})"

        print(f"\nemodistill inference benchmark: {len(paths)} clips, {audio_s:.1f} s of audio,")
        print(f"torch threads {threads}, batch size {args.batch_size}, {args.repeats} runs")
        print(f"student: Whisper tiny.en encoder + heads, {count(net) / 1e6:.2f} M parameters;")
        print(f"model folder load {load_s:.2f} s (once per process, not counted below)\n")
        print("(a) predict over a folder vs bare forward on the same audio")
        print(row("bare forward, one clip per call", "each"))
        print(
            row(f"bare forward, predict's {len(batches)} batches (<= {args.batch_size})", "batched")
        )
        print(row("predict over the folder (all included)", "predict"))
        best_bare = {k: min(v["each"], v["batched"]) for k, v in (("med", med), ("low", low))}
        print(
            f"    ratio predict / fastest bare forward     {med['predict'] / best_bare['med']:8.2f}"
            f"    (min/min {low['predict'] / best_bare['low']:.2f}; target <= 1.2)"
        )
        print("\n(b) cost per audio second: speech-only student vs multimodal pipeline")
        print(
            f"    student, predict (all included)          {1000 * med['predict'] / audio_s:8.1f}"
            " ms per audio s"
        )
        print(
            f"    multimodal pipeline                      {1000 * med['multi'] / audio_s:8.1f}"
            " ms per audio s"
        )
        for name, sec in parts.items():
            print(f"      {name:<38s} {1000 * sec / audio_s:8.1f}")
        print(
            f"    ratio student predict / multimodal       {med['predict'] / med['multi']:8.2f}"
            f"    (min/min {low['predict'] / low['multi']:.2f}; target <= 0.5)"
        )
        print(
            f"    ratio same-loop speech stage / total     {speech_share:8.2f}"
            "    (the student's own stage inside the multimodal loop)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def multimodal_pipeline(paths: list[Path], threads: int):
    """A callable running ASR + text teacher + eGeMAPS + prosodic CNN + speech encoder per file.

    The callable's ``parts`` dict holds the seconds each stage took in its last call.
    """
    import torch
    from faster_whisper import WhisperModel
    from transformers import AutoModel, AutoTokenizer

    from emodistill.audio import load_audio
    from emodistill.config import ProsodicConfig, StudentConfig
    from emodistill.features import egemaps_llds
    from emodistill.models import assets
    from emodistill.models.linguistic import LinguisticHeadConfig, LinguisticTeacher
    from emodistill.models.prosodic import ProsodicNetConfig, ProsodicResNet
    from emodistill.models.student import build_student

    asr = WhisperModel(
        str(assets.whisper_ct2_folder()), device="cpu", compute_type="int8", cpu_threads=threads
    )
    text_dir = assets.text_encoder_folder()
    text = LinguisticTeacher(
        AutoModel.from_pretrained(text_dir),
        LinguisticHeadConfig(labels=LABELS),
        tokenizer=AutoTokenizer.from_pretrained(text_dir),
    ).eval()
    prosodic = ProsodicResNet(
        ProsodicNetConfig.from_prosodic_config(ProsodicConfig(), LABELS)
    ).eval()
    speech = build_student(StudentConfig(), len(LABELS), 384, 128).eval()

    def run() -> None:
        parts = dict.fromkeys(
            [
                "read + resample audio",
                "ASR (faster-whisper tiny.en, int8)",
                "text teacher (MiniLM-L6)",
                "eGeMAPS LLDs (opensmile)",
                "prosodic ResNet",
                "speech encoder (same as student)",
            ],
            0.0,
        )
        keys = list(parts)
        with torch.inference_mode():
            for p in paths:
                t = time.perf_counter()
                x = load_audio(p)
                t1 = time.perf_counter()
                segments, _ = asr.transcribe(x, language="en", beam_size=1)
                words = " ".join(s.text for s in segments).strip()
                t2 = time.perf_counter()
                enc = text.encode([words or "."])
                text(enc["input_ids"], enc["attention_mask"])
                t3 = time.perf_counter()
                llds = egemaps_llds(x, 16000)
                t4 = time.perf_counter()
                prosodic(torch.from_numpy(llds)[None], torch.tensor([llds.shape[0]]))
                t5 = time.perf_counter()
                speech(torch.from_numpy(x)[None], torch.tensor([x.size]))
                t6 = time.perf_counter()
                stamps = [t, t1, t2, t3, t4, t5, t6]
                for k, a, b in zip(keys, stamps[:-1], stamps[1:], strict=True):
                    parts[k] += b - a
        run.parts = parts

    run.parts = {}
    return run


def main_rss(args: argparse.Namespace) -> None:
    """Peak RSS of `emodistill predict --segment` on a long generated file."""
    work = Path(tempfile.mkdtemp(prefix="emodistill-rss-", dir=args.tmp))
    try:
        build_student_folder(work / "model")
        path = work / "long.wav"
        sr = 16000
        block = sr * 60
        rng = np.random.default_rng(0)
        with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
            for minute in range(args.rss):  # one minute at a time: the writer stays small too
                t = np.arange(block) / sr + minute * 60
                x = 0.2 * np.sin(2 * np.pi * (150 + 50 * np.sin(t / 7)) * t)
                x *= 0.5 + 0.5 * np.sin(2 * np.pi * t / 5) ** 2
                f.write((x + 0.01 * rng.standard_normal(block)).astype(np.float32))
        size_mb = path.stat().st_size / 1e6
        exe = Path(sys.executable).with_name("emodistill")
        cmd = ["/usr/bin/time", "-v", str(exe), "predict", str(work / "model"), str(path)]
        cmd += ["--segment", "--format", "json", *args.rss_args.split()]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        n_seg = proc.stdout.count('"start"')
        print(f"file: {args.rss} min, 16 kHz mono PCM_16, {size_mb:.0f} MB")
        print(f"command: emodistill predict MODEL FILE --segment --format json {args.rss_args}")
        print(f"exit code {proc.returncode}, {n_seg} segments, wall {wall:.0f} s")
        if peak:
            print(f"peak RSS {int(peak[1]) / 1024:.0f} MiB   (target < 2048 MiB)")
        if proc.returncode:
            print(proc.stderr[-2000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- (d) side by side

#: Rows of (d): name -> (kind, argument). The published configurations: transformers' config
#: defaults are the base models (HubertConfig, Wav2Vec2Config, Data2VecAudioConfig = the
#: facebook/*-base configs); HuBERT-large is facebook/hubert-large-ll60k's config.
ROWS = {
    "student, torch": ("student", "torch"),
    "student, ONNX float": ("student", "onnx"),
    "student, ONNX int8": ("student", "onnx-int8"),
    "student on embedded:whisper-base": ("embedded", "embedded:whisper-base"),
    "HuBERT-base (random)": ("hf", "hubert-base"),
    "wav2vec2-base (random)": ("hf", "wav2vec2-base"),
    "data2vec-audio-base (random)": ("hf", "data2vec-audio-base"),
    "HuBERT-large (random)": ("hf", "hubert-large"),
}


def hf_encoder(name: str):
    """A random transformers encoder from its published configuration."""
    from transformers import (
        Data2VecAudioConfig,
        Data2VecAudioModel,
        HubertConfig,
        HubertModel,
        Wav2Vec2Config,
        Wav2Vec2Model,
    )

    if name == "hubert-base":
        return HubertModel(HubertConfig())
    if name == "wav2vec2-base":
        return Wav2Vec2Model(Wav2Vec2Config())
    if name == "data2vec-audio-base":
        return Data2VecAudioModel(Data2VecAudioConfig())
    if name == "hubert-large":  # facebook/hubert-large-ll60k: its published configuration
        from paper_scale import HUBERT  # bench/ is on sys.path when a bench script runs

        return HubertModel(HubertConfig(**HUBERT["large"]))
    raise ValueError(name)


def row_model(kind: str, arg: str, folder: Path):
    """(EmoDistill, parameter count) for one row of (d)."""
    from emodistill.inference.model import EmoDistill, TorchRunner

    if kind == "student":
        from safetensors import safe_open

        from emodistill.models.folder import weights_path

        # Count from the file: loading the torch module too would inflate ONNX rows' RSS.
        with safe_open(str(weights_path(folder)), "np") as f:
            params = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
        return EmoDistill.from_pretrained(folder, backend=arg), params
    from emodistill.config import StudentConfig
    from emodistill.models.encoders import TransformersSpeechEncoder
    from emodistill.models.student import EmoDistillStudent, build_student

    if kind == "embedded":
        net = build_student(StudentConfig(encoder=arg), len(LABELS), 384, 128).eval()
        config = {"labels": LABELS}
    else:
        hf = hf_encoder(arg)
        # data2vec-audio has no such field: its CNN is layer-normed (and takes a mask).
        layer_norm = getattr(hf.config, "feat_extract_norm", "layer") == "layer"
        encoder = TransformersSpeechEncoder(hf, use_attention_mask=layer_norm)
        net = EmoDistillStudent(encoder, len(LABELS), 384, 128, 256, 256).eval()
        config = {
            "labels": LABELS,
            "encoder": {"kind": "transformers", "use_attention_mask": layer_norm},
        }
    return EmoDistill(TorchRunner(net), config, module=net), count(net)


def run_row(args: argparse.Namespace) -> None:
    """Child process of (d): one row, printed as one JSON line."""
    import resource

    import torch

    from emodistill.audio import load_audio
    from emodistill.inference.stream import StreamSession

    torch.set_num_threads(args.threads or 2)
    os.environ["EMODISTILL_NUM_THREADS"] = str(args.threads or 2)
    work = Path(args.work)
    kind, arg = ROWS[args.row]
    try:
        model, params = row_model(kind, arg, work / "model")
    except Exception as err:  # e.g. an embedded id that does not resolve yet
        print(json.dumps({"row": args.row, "skipped": f"{type(err).__name__}: {err}"[:200]}))
        return
    signals = [load_audio(p) for p in sorted((work / "audio").glob("*.wav"))]
    audio_s = sum(s.size for s in signals) / 16000
    model.predict_proba(signals[:2], batch_size=1)  # warm-up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        model.predict_proba(signals, batch_size=1)
        times.append(time.perf_counter() - t)
    # Streaming: the clips back to back, 100 ms chunks, default 3 s / 1.5 s windows.
    stream = np.concatenate(signals)[: int(args.stream_seconds * 16000)]
    session = StreamSession(model)
    latencies = []
    for a in range(0, stream.size, 1600):
        t = time.perf_counter()
        events = session.push(stream[a : a + 1600])
        if events:
            latencies.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "row": args.row,
                "params_m": params / 1e6,
                "ms_per_audio_s": 1000 * statistics.median(times) / audio_s,
                "audio_s": audio_s,
                "peak_rss_mib": peak,
                "latency_p50_ms": 1000 * float(np.percentile(latencies, 50)),
                "latency_p95_ms": 1000 * float(np.percentile(latencies, 95)),
                "windows": len(latencies),
            }
        )
    )


def main_compare(args: argparse.Namespace) -> None:
    from emodistill.inference.onnx import export_onnx
    from emodistill.models.folder import ONNX_INT8_NAME, ONNX_NAME

    work = Path(tempfile.mkdtemp(prefix="emodistill-compare-"))
    try:
        paths = synth_corpus(work / "audio", args.clips)
        build_student_folder(work / "model")
        export_onnx(work / "model", work / "model" / ONNX_NAME)
        report = export_onnx(work / "model", work / "model" / ONNX_INT8_NAME, quantize="int8")
        print(
            f"int8 export parity on {report['clips']} clips: label agreement "
            f"{report['label_agreement']:.0%}, max |dp| {report['max_abs_diff']:.1e}"
        )
        results = []
        for name in ROWS:
            cmd = [sys.executable, __file__, "--row", name, "--work", str(work)]
            cmd += ["--repeats", str(args.repeats), "--threads", str(args.threads or 2)]
            cmd += ["--stream-seconds", str(args.stream_seconds)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("{")]
            if proc.returncode or not line:
                results.append({"row": name, "skipped": f"failed: {proc.stderr[-300:]}"})
            else:
                results.append(json.loads(line[-1]))
            print(f"  {name}: done", file=sys.stderr)
        base = next(r for r in results if r["row"] == "student, torch")["ms_per_audio_s"]
        float_onnx = next(r for r in results if r["row"] == "student, ONNX float")
        audio_s = results[0].get("audio_s", 0.0)
        print(
            f"\n(d) side by side: {len(paths)} espeak-ng clips, {audio_s:.1f} s of audio, "
            f"{args.threads or 2} threads, median of {args.repeats}; streaming over "
            f"{args.stream_seconds:g} s in 100 ms chunks (3 s windows, 1.5 s hop)\n"
        )
        print(
            "| model | params (M) | ms per audio s | ratio to student (torch) | peak RSS (MiB) "
            "| stream latency p50 / p95 (ms) |"
        )
        print("|---|---|---|---|---|---|")
        for r in results:
            if "skipped" in r:
                print(f"| {r['row']} | skipped: {r['skipped'].splitlines()[0][:90]} | | | | |")
                continue
            print(
                f"| {r['row']} | {r['params_m']:.1f} | {r['ms_per_audio_s']:.1f} | "
                f"{r['ms_per_audio_s'] / base:.2f} | {r['peak_rss_mib']:.0f} | "
                f"{r['latency_p50_ms']:.0f} / {r['latency_p95_ms']:.0f} |"
            )
        int8 = next(r for r in results if r["row"] == "student, ONNX int8")
        if "skipped" not in int8 and "skipped" not in float_onnx:
            print(
                f"\nint8 / ONNX float: {int8['ms_per_audio_s'] / float_onnx['ms_per_audio_s']:.2f}"
                f"; int8 / torch: {int8['ms_per_audio_s'] / base:.2f} (target <= 0.6)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clips", type=int, default=24, help="espeak-ng clips in the folder")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs (median, min)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--rss", type=int, default=0, help="minutes: measure peak RSS instead")
    ap.add_argument("--rss-args", default="", help="extra predict flags for --rss (e.g. --vad)")
    ap.add_argument("--tmp", default=None, help="folder for the long file (default: $TMPDIR)")
    ap.add_argument("--compare", action="store_true", help="(d): the side-by-side table")
    ap.add_argument("--stream-seconds", type=float, default=24.0, help="(d): streamed audio")
    ap.add_argument("--row", default=None, help=argparse.SUPPRESS)  # (d) child process
    ap.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.row:
        run_row(args)
    elif args.compare:
        main_compare(args)
    elif args.rss:
        main_rss(args)
    else:
        main_speed(args)


if __name__ == "__main__":
    main()

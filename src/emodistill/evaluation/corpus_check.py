"""Check a corpus before training: read every audio file of a manifest once and say what is
wrong with it (``emodistill corpus check``; docs/data.md, "Checking a corpus").

Per file: the header's sample rate and channels, the duration, the peak and RMS level and the
share of clipped samples; a file that cannot be used (missing, not audio, truncated, non-finite
samples, ...) is named with the reason :mod:`emodistill.audio` gives. Per corpus: utterances,
speakers, classes per speaker, duration quantiles, sample rates, channel counts and transcript
coverage. Nothing is modified.

Levels are measured on the mono mix at the file's own rate, which is what the models hear
(before resampling to 16 kHz): a stereo file with only one clipped channel is not flagged.
Files are decoded block by block (memory: one block per worker) in a thread pool: libsndfile
and numpy release the GIL, and threads need no pickling or process start-up.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from emodistill.audio import audio_info, stream_audio
from emodistill.audio.failures import file_error
from emodistill.corpora.manifest import Manifest, Utterance
from emodistill.features.egemaps import MIN_SECONDS
from emodistill.util.progress import progress_bar

#: A sample at or above this magnitude (full scale = 1.0) counts as clipped. 16-bit full scale
#: is 32767 / 32768 = 0.99997, so a hard-clipped PCM file is caught whatever its bit depth.
CLIP_LEVEL = 0.999
#: A file is *clipped* when more than this share of its samples are clipped (0.1 %: one
#: millisecond per second; a few isolated full-scale peaks in loud speech are not flagged).
CLIP_SHARE = 0.001
#: A file is *silent* when its RMS level is below this (dB relative to full scale). Speech is
#: recorded around -20 to -35 dBFS; -60 dBFS is an empty channel, a muted microphone or noise.
SILENCE_DBFS = -60.0
#: The level reported for digital silence (all samples zero), instead of -inf.
DBFS_FLOOR = -200.0
#: A file is *too short* below eGeMAPS' shortest input
#: (:data:`emodistill.features.egemaps.MIN_SECONDS`, 60 ms): it has no prosodic features, so
#: training leaves it out (``too_short_for_training``).
TOO_SHORT_SECONDS = MIN_SECONDS
#: Decoding block; memory per worker stays one block whatever the file's length.
BLOCK_SECONDS = 10.0
#: Duration quantiles reported (name, q).
QUANTILES = (
    ("min", 0.0),
    ("p05", 0.05),
    ("p25", 0.25),
    ("median", 0.5),
    ("p75", 0.75),
    ("p95", 0.95),
    ("max", 1.0),
)


def dbfs(level: float) -> float:
    """A linear level (1.0 = full scale) in dBFS, :data:`DBFS_FLOOR` for 0.

    >>> dbfs(1.0), dbfs(0.001), dbfs(0.0)
    (0.0, -60.0, -200.0)
    """
    return max(DBFS_FLOOR, 20.0 * math.log10(level)) if level > 0 else DBFS_FLOOR


@dataclass(frozen=True)
class FileCheck:
    """What reading one utterance's file found; ``error`` is set (and the rest None) when the
    file cannot be used."""

    id: str
    path: str
    label: str
    speaker: str
    seconds: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    peak_dbfs: float | None = None
    rms_dbfs: float | None = None
    clipped_share: float | None = None
    error: str | None = None

    @property
    def readable(self) -> bool:
        return self.error is None

    @property
    def clipped(self) -> bool:
        return self.clipped_share is not None and self.clipped_share > CLIP_SHARE

    @property
    def silent(self) -> bool:
        return self.rms_dbfs is not None and self.rms_dbfs < SILENCE_DBFS

    @property
    def too_short(self) -> bool:
        return self.seconds is not None and self.seconds < TOO_SHORT_SECONDS


def check_file(utterance: Utterance) -> FileCheck:
    """Read ``utterance``'s audio once and measure it; a bad file is a :class:`FileCheck` with
    ``error``, never an exception (one bad file must not stop the check).

    Raises:
        EnvironmentFault: the disk failed (I/O error, ...): the machine, not the file, so the
            check stops rather than report a healthy corpus as unreadable.
    """
    base = {
        "id": utterance.id,
        "path": str(utterance.path),
        "label": utterance.label,
        "speaker": utterance.speaker,
    }
    try:
        info = audio_info(utterance.path)
        frames = clipped = 0
        peak = energy = 0.0
        for block in stream_audio(utterance.path, BLOCK_SECONDS, sample_rate=info.samplerate):
            magnitude = np.abs(block)
            frames += block.size
            peak = max(peak, float(magnitude.max()))
            energy += float(np.dot(block.astype(np.float64), block.astype(np.float64)))
            clipped += int(np.count_nonzero(magnitude >= CLIP_LEVEL))
    except Exception as err:  # noqa: BLE001 - report any failure per file, keep going
        return FileCheck(**base, error=file_error(err, utterance.path, "corpus check"))
    if frames == 0:
        return FileCheck(**base, error=f"{utterance.path}: audio is empty (0 samples)")
    return FileCheck(
        **base,
        seconds=frames / info.samplerate,
        sample_rate=info.samplerate,
        channels=info.channels,
        peak_dbfs=round(dbfs(peak), 2),
        rms_dbfs=round(dbfs(math.sqrt(energy / frames)), 2),
        clipped_share=clipped / frames,
    )


@dataclass
class CorpusCheck:
    """Every file's :class:`FileCheck` (manifest order) and the corpus-level summary."""

    manifest: str | None
    labels: list[str]
    files: list[FileCheck]
    transcripts: int  # utterances with a non-empty transcript

    @property
    def unreadable(self) -> list[FileCheck]:
        return [f for f in self.files if not f.readable]

    @property
    def clipped(self) -> list[FileCheck]:
        return [f for f in self.files if f.clipped]

    @property
    def silent(self) -> list[FileCheck]:
        return [f for f in self.files if f.silent]

    @property
    def too_short(self) -> list[FileCheck]:
        return [f for f in self.files if f.too_short]

    def classes_per_speaker(self) -> dict[str, dict[str, int]]:
        """Utterances per speaker and label (every label present, zeros included), speakers
        sorted."""
        counts = Counter((f.speaker, f.label) for f in self.files)
        speakers = sorted({f.speaker for f in self.files})
        return {s: {lab: counts[s, lab] for lab in self.labels} for s in speakers}

    def durations(self, label: str | None = None) -> list[float]:
        """Seconds of every readable file (of ``label`` when given)."""
        return [
            f.seconds
            for f in self.files
            if f.seconds is not None and (label is None or f.label == label)
        ]

    def duration_summary(self) -> dict[str, float | None]:
        """Total and mean seconds and the :data:`QUANTILES` of the readable files' durations."""
        seconds = np.asarray(self.durations(), dtype=np.float64)
        if seconds.size == 0:
            return {"total": 0.0, "mean": None, **{name: None for name, _ in QUANTILES}}
        out: dict[str, float | None] = {
            "total": float(seconds.sum()),
            "mean": float(seconds.mean()),
        }
        for name, q in QUANTILES:
            out[name] = float(np.quantile(seconds, q))
        return out

    def to_dict(self) -> dict[str, Any]:
        """``check.json``: thresholds, summary, the problem lists and every file's row."""
        per_speaker = self.classes_per_speaker()
        n = len(self.files)

        def rows(files: Sequence[FileCheck], key: str) -> list[dict[str, Any]]:
            return [{"id": f.id, "path": f.path, key: getattr(f, key)} for f in files]

        return {
            "manifest": self.manifest,
            "ok": not self.unreadable,
            "thresholds": {
                "clip_level": CLIP_LEVEL,
                "clip_share": CLIP_SHARE,
                "silence_dbfs": SILENCE_DBFS,
                "too_short_seconds": TOO_SHORT_SECONDS,
            },
            "utterances": n,
            "readable": n - len(self.unreadable),
            "speakers": len(per_speaker),
            "labels": list(self.labels),
            "class_counts": {lab: sum(c[lab] for c in per_speaker.values()) for lab in self.labels},
            "classes_per_speaker": per_speaker,
            "speakers_missing_classes": {
                s: [lab for lab, k in c.items() if k == 0]
                for s, c in per_speaker.items()
                if 0 in c.values()
            },
            "duration_seconds": self.duration_summary(),
            "sample_rates": _histogram(f.sample_rate for f in self.files),
            "channels": _histogram(f.channels for f in self.files),
            "transcripts": {"with": self.transcripts, "share": self.transcripts / n if n else 0},
            "unreadable": rows(self.unreadable, "error"),
            "clipped": rows(self.clipped, "clipped_share"),
            "silent": rows(self.silent, "rms_dbfs"),
            "too_short": rows(self.too_short, "seconds"),
            "files": [asdict(f) for f in self.files],
        }


def _histogram(values: Any) -> dict[str, int]:
    """``{str(value): count}`` sorted by value, unreadable files (None) left out."""
    counts = Counter(v for v in values if v is not None)
    return {str(v): counts[v] for v in sorted(counts)}


def check_corpus(manifest: Manifest, workers: int = 4, progress: bool = True) -> CorpusCheck:
    """Read every audio file of ``manifest`` once (``workers`` threads) and summarise.

    Load the manifest with ``check_files=False`` so that missing files are reported here, with
    the others, instead of stopping the load.

    Args:
        manifest: the loaded manifest.
        workers: decoding threads (1: in this thread).
        progress: show a progress bar (:mod:`emodistill.util.progress`).

    Returns:
        A :class:`CorpusCheck`; nothing is written (``check_report.write_check`` does that).

    Raises:
        EnvironmentFault: the disk failed while reading (see :func:`check_file`).
    """
    utts = list(manifest.utterances)
    results: list[FileCheck | None] = [None] * len(utts)
    with progress_bar(progress, len(utts), "checking audio") as advance:
        if workers <= 1 or len(utts) <= 1:
            for i, u in enumerate(utts):
                results[i] = check_file(u)
                advance(1)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(check_file, u): i for i, u in enumerate(utts)}
                try:
                    for future in as_completed(futures):
                        results[futures[future]] = future.result()
                        advance(1)
                except BaseException:  # a failed disk or Ctrl-C: do not read the rest first
                    for future in futures:
                        future.cancel()
                    raise
    transcripts = sum(1 for u in utts if (u.transcript or "").strip())
    return CorpusCheck(
        manifest=str(manifest.path) if manifest.path is not None else None,
        labels=list(manifest.labels),
        files=[r for r in results if r is not None],
        transcripts=transcripts,
    )

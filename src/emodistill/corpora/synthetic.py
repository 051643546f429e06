"""The synthetic demo corpus: espeak-ng speech with emotion partly in words, partly in prosody.

This is the embedded default data that the teachers, the student and ``make demo`` train on, so it
is built to show what EmoDistill is about (the design and its measured numbers are in
``docs/corpus.md``):

* **Words.** A share of the sentences (:data:`LEXICAL_SHARE`) is built from templates filled with
  an emotion lexicon (:data:`LEXICON`); the rest are lexically neutral everyday sentences drawn
  from one pool for every label, so their words say nothing about the label. Some emotional
  sentences carry the words of *another* emotion (:data:`MISLEADING_SHARE`): sarcasm for anger
  ("oh wow, this is wonderful" said angrily), masking for sadness ("I feel fine" said sadly).
  The label is always the truth; a text-only model is wrong on them.
* **Prosody.** Every label has a prosodic profile (:data:`PROSODY`: pitch, pitch range, rate,
  loudness, spectral tilt, pauses) applied on top of each speaker's own voice, scaled by a random
  per-utterance intensity and blurred by per-utterance jitter, so prosody alone is an imperfect cue
  (and worse across speakers, whose own voices differ more than some emotions do).

Neither modality alone solves the task, both together do better than each: like IEMOCAP, where
text is the stronger cue and prosody the complementary one.

Speakers are espeak-ng voice variants over several English accents, with their own base pitch,
rate, loudness, pitch range, tilt and noise floor; sessions pair two speakers (one female, one
male) like IEMOCAP's sessions, so leave-one-session-out folds work too.

Everything random is drawn from seeds derived from ``seed`` and the utterance's index, never from
the order in which workers finish: the same seed gives the same manifest and the same wav bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emodistill.config import LABELS_4
from emodistill.corpora.espeak import (
    SynthError,
    espeak_binary,
    espeak_version,
    render_utterance,
)
from emodistill.corpora.synthetic_words import (
    EMOTION_TEMPLATES,
    LEXICON,
    NEUTRAL_SENTENCES,
    fill_template,
    neutral_sentence,
)
from emodistill.util.files import write_json_atomic
from emodistill.util.log import get_logger
from emodistill.util.progress import make_progress

log = get_logger(__name__)

__all__ = [
    "LABELS",
    "LEXICAL_SHARE",
    "LEXICON",
    "MISLEADING_SHARE",
    "NEUTRAL_SENTENCES",
    "PROSODY",
    "SYNTHESIS_NAME",
    "VOICES",
    "EmotionProsody",
    "SpeakerVoice",
    "SynthError",
    "UtterancePlan",
    "plan_corpus",
    "synthesize_corpus",
]

#: The recipe file a synthetic corpus leaves beside its manifest (every utterance's plan); its
#: presence marks a corpus as synthetic (``breakdown``, the demo, ``model_card``).
SYNTHESIS_NAME = "synthesis.json"

#: Bump when the corpus recipe changes (recorded in ``synthesis.json``).
CORPUS_VERSION = 1
LABELS = LABELS_4

#: Share of utterances whose sentence carries emotion words; the rest are lexically neutral.
LEXICAL_SHARE = 0.7
#: Share of those emotional sentences whose words point to another emotion than the label.
MISLEADING_SHARE = 0.12
#: Which emotion's words a misleading sentence borrows, per true label (weights).
MISLEADING_WORDS = {
    "neutral": {"happy": 1.0, "angry": 1.0, "sad": 1.0},  # reading out someone else's feelings
    "happy": {"angry": 0.5, "sad": 0.5},  # laughing complaints, tears of joy
    "angry": {"happy": 0.8, "neutral": 0.2},  # sarcasm: "oh wow, this is wonderful"
    "sad": {"neutral": 0.8, "happy": 0.2},  # masking: "I feel fine about it"
}


# --------------------------------------------------------------------------- prosody


@dataclass(frozen=True)
class EmotionProsody:
    """An emotion's prosodic profile, relative to the speaker's own voice (at intensity 1).

    pitch: espeak-ng ``-p`` units added to the speaker's base (0..99 scale, ~0.15 semitone each).
    range: factor on the speaker's pitch range (SSML ``<prosody range>``).
    rate: factor on the speaker's speaking rate (``-s``, words per minute).
    gain_db: loudness change in dB.
    tilt: spectral tilt (vocal effort): > 0 brighter/pressed, < 0 darker/breathier.
    gap: extra pause between words (``-g``, units of 10 ms).
    """

    pitch: float
    range: float
    rate: float
    gain_db: float
    tilt: float
    gap: float


#: Prosodic profiles (the classic findings: anger fast, loud, pressed, wide range; sadness slow,
#: quiet, low, narrow, dark; happiness high and wide; neutral is the speaker's own voice).
PROSODY: dict[str, EmotionProsody] = {
    "neutral": EmotionProsody(pitch=0, range=1.0, rate=1.0, gain_db=0.0, tilt=0.0, gap=0),
    "happy": EmotionProsody(pitch=14, range=1.7, rate=1.08, gain_db=2.5, tilt=0.25, gap=0),
    "angry": EmotionProsody(pitch=6, range=1.45, rate=1.2, gain_db=7.0, tilt=0.6, gap=0),
    "sad": EmotionProsody(pitch=-10, range=0.5, rate=0.8, gain_db=-6.0, tilt=-0.4, gap=3),
}
#: Per-utterance jitter (standard deviations): pitch units, log-range, log-rate, dB, tilt.
JITTER = {"pitch": 5.0, "range": 0.18, "rate": 0.07, "gain_db": 2.0, "tilt": 0.12}
#: How much speakers differ from each other (standard deviations; noise floor is uniform in dB).
SPEAKER_SPREAD = {"pitch": 8.0, "rate": 12.0, "range": 0.2, "gain_db": 2.0, "tilt": 0.12}
#: Emotional intensity of a non-neutral utterance: a share is "mild" (prosody close to the speaker's
#: neutral voice, so only the words can tell), the rest "clear"; uniform within each range.
INTENSITY = {"mild_share": 0.35, "mild": (0.05, 0.35), "clear": (0.8, 1.4)}


@dataclass(frozen=True)
class SpeakerVoice:
    """An espeak-ng voice (``language+variant``) and its gender (for session pairing)."""

    voice: str
    gender: str


#: Voices in session order (female, male per session); the first 12 are the default speakers.
VOICES: tuple[SpeakerVoice, ...] = (
    SpeakerVoice("en-us+f2", "F"),
    SpeakerVoice("en-us+m3", "M"),
    SpeakerVoice("en+f3", "F"),
    SpeakerVoice("en+m7", "M"),
    SpeakerVoice("en-us+Annie", "F"),
    SpeakerVoice("en-us+klatt", "M"),
    SpeakerVoice("en-gb-scotland+f4", "F"),
    SpeakerVoice("en-gb-scotland+m2", "M"),
    SpeakerVoice("en-us+Alicia", "F"),
    SpeakerVoice("en-us+adam", "M"),
    SpeakerVoice("en-029+f5", "F"),
    SpeakerVoice("en-029+max", "M"),
    SpeakerVoice("en-us-nyc+belinda", "F"),
    SpeakerVoice("en-us-nyc+travis", "M"),
    SpeakerVoice("en-gb-x-rp+linda", "F"),
    SpeakerVoice("en-gb-x-rp+michel", "M"),
    SpeakerVoice("en-us+f1", "F"),
    SpeakerVoice("en-us+m5", "M"),
    SpeakerVoice("en+Andrea", "F"),
    SpeakerVoice("en+robert", "M"),
)


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: a voice plus personal prosody (drawn from the seed)."""

    name: str
    session: str
    voice: str
    gender: str
    pitch: float  # espeak-ng -p base
    rate: float  # words per minute
    range: float  # pitch-range factor
    gain_db: float
    tilt: float
    noise_db: float  # noise floor, dB re full scale (RMS)


def _speakers(n: int, seed: int) -> list[Speaker]:
    out = []
    for i in range(n):
        v = VOICES[i % len(VOICES)]
        rng = np.random.default_rng([seed, 1, i])
        # Voices reused beyond the table get a shifted base pitch so they are new speakers.
        reuse = i // len(VOICES)
        shift = 0.0 if reuse == 0 else float(rng.choice([-1, 1])) * 8.0 * reuse
        out.append(
            Speaker(
                name=f"spk{i + 1:02d}",
                session=f"S{i // 2 + 1}",
                voice=v.voice,
                gender=v.gender,
                pitch=float(np.clip(rng.normal(48, SPEAKER_SPREAD["pitch"]) + shift, 20, 80)),
                rate=float(np.clip(rng.normal(168, SPEAKER_SPREAD["rate"]), 135, 200)),
                range=float(math.exp(rng.normal(0, SPEAKER_SPREAD["range"]))),
                gain_db=float(rng.normal(0, SPEAKER_SPREAD["gain_db"])),
                tilt=float(rng.normal(0, SPEAKER_SPREAD["tilt"])),
                noise_db=float(rng.uniform(-66, -52)),
            )
        )
    return out


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class UtterancePlan:
    """Everything needed to render one utterance (no randomness left for the workers)."""

    id: str
    speaker: str
    session: str
    label: str
    transcript: str
    word_emotion: str | None  # emotion whose words the sentence carries; None = lexically neutral
    intensity: float
    voice: str
    pitch: int
    rate: int
    range_pct: int
    gap: int
    gain_db: float
    tilt: float
    noise_db: float
    seed: int  # for the noise and silence padding


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def plan_corpus(
    utterances: int = 1200,
    speakers: int = 12,
    seed: int = 0,
    lexical_share: float = LEXICAL_SHARE,
) -> list[UtterancePlan]:
    """Draw the whole corpus (texts, labels, prosody) without synthesising it.

    ``lexical_share`` is the share of sentences built from emotion words (0: every sentence from
    the lexically neutral pool, so the words carry nothing, as in fixed-sentence corpora). The
    random draws do not depend on it, so only the words change.

    Labels are balanced overall (exactly, when ``utterances`` is a multiple of 4) and within each
    speaker (to within one). Each utterance draws from its own seed ``(seed, 2, index)``.
    """
    if not 0.0 <= float(lexical_share) <= 1.0:
        raise SynthError(f"lexical_share must be in [0, 1], got {lexical_share}")
    if speakers < 2:
        raise SynthError(f"need at least 2 speakers for speaker-independent folds, got {speakers}")
    if utterances < max(len(LABELS), speakers):
        raise SynthError(
            f"need at least {max(len(LABELS), speakers)} utterances for {speakers} speakers "
            f"and {len(LABELS)} labels, got {utterances}"
        )
    spk = _speakers(speakers, seed)
    plans: list[UtterancePlan] = []
    index = 0
    for s_idx, sp in enumerate(spk):
        count = utterances // speakers + (1 if s_idx < utterances % speakers else 0)
        for k in range(count):
            label = LABELS[index % len(LABELS)]
            rng = _rng(seed, 2, index)
            # Words.
            word_emotion: str | None = None
            if rng.random() < lexical_share:
                word_emotion = label
                if rng.random() < MISLEADING_SHARE:
                    other = MISLEADING_WORDS[label]
                    names = sorted(other)
                    p = np.array([other[n] for n in names], dtype=float)
                    word_emotion = names[int(rng.choice(len(names), p=p / p.sum()))]
                template = EMOTION_TEMPLATES[int(rng.integers(len(EMOTION_TEMPLATES)))]
                text = fill_template(template, LEXICON[word_emotion], rng)
            else:
                text = neutral_sentence(rng)
            # Prosody: speaker's voice + intensity x emotion profile + jitter.
            prof = PROSODY[label]
            a = 0.0
            if label != "neutral":
                mild = rng.random() < INTENSITY["mild_share"]
                a = float(rng.uniform(*INTENSITY["mild" if mild else "clear"]))
            j = {k_: rng.normal(0, sd) for k_, sd in JITTER.items()}
            pitch = sp.pitch + a * prof.pitch + j["pitch"]
            rng_factor = sp.range * prof.range**a * math.exp(j["range"])
            rate = sp.rate * prof.rate**a * math.exp(j["rate"])
            plans.append(
                UtterancePlan(
                    id=f"{sp.name}_{k:04d}",
                    speaker=sp.name,
                    session=sp.session,
                    label=label,
                    transcript=text,
                    word_emotion=word_emotion,
                    intensity=round(float(a), 4),
                    voice=sp.voice,
                    pitch=int(round(float(np.clip(pitch, 0, 99)))),
                    rate=int(round(float(np.clip(rate, 90, 320)))),
                    range_pct=int(round(float(np.clip(100 * rng_factor, 20, 300)))),
                    gap=int(round(a * prof.gap + abs(rng.normal(0, 0.7)))),
                    gain_db=round(float(sp.gain_db + a * prof.gain_db + j["gain_db"]), 3),
                    tilt=round(float(np.clip(sp.tilt + a * prof.tilt + j["tilt"], -0.7, 0.9)), 4),
                    noise_db=round(sp.noise_db, 3),
                    seed=int(rng.integers(2**31)),
                )
            )
            index += 1
    return plans


# --------------------------------------------------------------------------- rendering


def _wav_path(out_dir: Path, plan: UtterancePlan) -> Path:
    return out_dir / "wav" / plan.speaker / f"{plan.id}.wav"


def synthesize_corpus(
    out_dir: str | Path,
    utterances: int = 1200,
    speakers: int = 12,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    lexical_share: float = LEXICAL_SHARE,
) -> Path:
    """Synthesise the demo corpus with espeak-ng and write its manifest.

    Writes ``OUT_DIR/wav/<speaker>/<id>.wav`` (16 kHz mono 16-bit PCM, ~1.5-4 s each),
    ``OUT_DIR/manifest.csv`` (id, path, label, speaker, session, transcript) and
    ``OUT_DIR/synthesis.json`` (the recipe and every utterance's word emotion and prosody, for
    analysis; training never reads it).

    Args:
        out_dir: output folder (created).
        utterances: number of utterances, labels balanced (neutral, happy, angry, sad).
        speakers: number of speakers (voice variants); sessions pair them two by two.
        seed: same seed, same manifest and same wav bytes.
        workers: parallel espeak-ng processes (default: all CPU cores).
        progress: show a rich progress bar.
        lexical_share: share of sentences carrying emotion words (0: words carry nothing).

    Returns:
        Path of ``manifest.csv``.

    Raises:
        SynthError: espeak-ng is missing (names the package) or fails (names the utterance and
            quotes its stderr), or the arguments cannot make a usable corpus.
    """
    from emodistill.corpora.manifest import Utterance, write_manifest

    out_dir = Path(out_dir).absolute()
    plans = plan_corpus(utterances, speakers, seed, lexical_share)
    binary = espeak_binary()
    workers = max(1, workers or os.cpu_count() or 1)
    for sp in sorted({p.speaker for p in plans}):
        (out_dir / "wav" / sp).mkdir(parents=True, exist_ok=True)

    rendered: dict[str, tuple[float, int]] = {}

    def job(plan: UtterancePlan) -> tuple[str, tuple[float, int]]:
        return plan.id, render_utterance(plan, binary, _wav_path(out_dir, plan))

    # Threads suffice: the heavy part runs in espeak-ng subprocesses and GIL-free soxr/numpy.
    started = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        # map() yields in plan order: the first failing utterance in the plan is the one reported.
        results = pool.map(job, plans)
        if progress:
            with make_progress(stderr=True) as bar:
                task = bar.add_task(f"synthesising {len(plans)} utterances", total=len(plans))
                for uid, res in results:
                    rendered[uid] = res
                    bar.advance(task)
        else:
            rendered.update(results)
    finally:
        # On an error, do not render the rest of the corpus before reporting it.
        pool.shutdown(wait=True, cancel_futures=True)

    manifest = out_dir / "manifest.csv"
    write_manifest(
        [
            Utterance(
                id=p.id,
                path=_wav_path(out_dir, p),
                label=p.label,
                speaker=p.speaker,
                session=p.session,
                transcript=p.transcript,
            )
            for p in plans
        ],
        manifest,
    )
    recipe = {
        "version": CORPUS_VERSION,
        "seed": seed,
        "utterances": utterances,
        "speakers": [asdict(s) for s in _speakers(speakers, seed)],
        "lexical_share": float(lexical_share),
        # Misleading sentences are a share of the lexical ones: none without lexical sentences.
        "misleading_share": MISLEADING_SHARE if lexical_share > 0 else 0.0,
        "prosody": {k: asdict(v) for k, v in PROSODY.items()},
        "jitter": JITTER,
        "intensity": INTENSITY,
        "espeak": espeak_version(binary),
        "plan": [
            {**asdict(p), "duration": round(rendered[p.id][0], 4), "rate_used": rendered[p.id][1]}
            for p in plans
        ],
    }
    recipe["plan_sha256"] = hashlib.sha256(
        json.dumps(recipe["plan"], sort_keys=True).encode()
    ).hexdigest()
    write_json_atomic(out_dir / SYNTHESIS_NAME, recipe, indent=1, sort_keys=True)
    if progress:
        minutes = sum(d for d, _ in rendered.values()) / 60
        log.info(
            f"wrote {len(plans)} utterances ({minutes:.1f} min of audio), {speakers} speakers, "
            f"labels {', '.join(LABELS)} in {time.perf_counter() - started:.1f} s: {manifest}"
        )
    return manifest

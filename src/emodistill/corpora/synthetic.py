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
import io
import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
import soxr

from emodistill._io import write_json_atomic
from emodistill.audio import SAMPLE_RATE, write_wav
from emodistill.config import LABELS_4

__all__ = [
    "LABELS",
    "LEXICAL_SHARE",
    "LEXICON",
    "MISLEADING_SHARE",
    "NEUTRAL_SENTENCES",
    "PROSODY",
    "VOICES",
    "EmotionProsody",
    "SpeakerVoice",
    "SynthError",
    "UtterancePlan",
    "plan_corpus",
    "synthesize_corpus",
]

#: Bump when the corpus recipe changes (recorded in ``synthesis.json``).
CORPUS_VERSION = 1
LABELS = LABELS_4
#: Environment variable naming the espeak-ng executable (default: ``espeak-ng`` on PATH).
ESPEAK_ENV = "EMODISTILL_ESPEAK"

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


class SynthError(RuntimeError):
    """The corpus cannot be synthesised (espeak-ng missing or failing, bad arguments)."""


# --------------------------------------------------------------------------- words

#: Topics shared by every emotion, so they carry no label information.
TOPICS = (
    "the new job",
    "this weekend",
    "the test results",
    "the meeting",
    "your message",
    "the trip",
    "the old house",
    "my brother",
    "the whole thing",
    "the news",
    "the dinner",
    "our project",
    "the letter",
    "the interview",
)
#: Fillers shared by every emotion.
ASIDES = ("to be honest", "if you ask me", "I must say", "believe me", "right now")

#: The emotion lexicon: slot -> words, per emotion (``neutral`` = calm, matter-of-fact wording).
LEXICON: dict[str, dict[str, tuple[str, ...]]] = {
    "neutral": {
        "adj": ("fine", "okay", "calm", "indifferent", "unbothered", "alright", "neutral"),
        "intj": ("well", "okay", "right", "so"),
        "excl": (
            "it is what it is",
            "nothing special to report",
            "that seems reasonable",
            "it went about as expected",
            "that is just the usual",
            "it makes no difference to me",
        ),
        "verb": ("don't mind", "have no opinion on", "took note of", "am used to"),
    },
    "happy": {
        "adj": ("happy", "glad", "delighted", "thrilled", "excited", "overjoyed", "cheerful"),
        "intj": ("wow", "yay", "hooray", "oh wonderful"),
        "excl": (
            "this is wonderful",
            "what a lovely surprise",
            "I can't stop smiling",
            "this is the best day ever",
            "this is fantastic news",
            "I am over the moon",
        ),
        "verb": ("love", "adore", "really enjoy", "am so grateful for"),
    },
    "angry": {
        "adj": ("furious", "angry", "annoyed", "outraged", "livid", "fed up", "irritated"),
        "intj": ("damn it", "unbelievable", "come on", "for heaven's sake"),
        "excl": (
            "this is completely unacceptable",
            "how dare you",
            "stop lying to me",
            "this is ridiculous",
            "I have had enough of this",
            "get out of my way",
        ),
        "verb": ("hate", "can't stand", "am sick of", "resent"),
    },
    "sad": {
        "adj": ("sad", "unhappy", "heartbroken", "miserable", "lonely", "depressed", "gloomy"),
        "intj": ("oh no", "sigh", "oh dear", "alas"),
        "excl": (
            "I miss them so much",
            "nothing ever works out",
            "I just feel so empty",
            "it really hurts",
            "everything is falling apart",
            "I can't stop crying",
        ),
        "verb": ("miss", "grieve over", "regret", "mourn"),
    },
}

#: Templates of the emotional sentences, shared by every emotion (slots from :data:`LEXICON`).
EMOTION_TEMPLATES = (
    "I feel {adj} about {topic}.",
    "I am so {adj} right now.",
    "{Intj}, {excl}.",
    "Honestly, {topic} leaves me {adj}.",
    "You know, I {verb} {topic}.",
    "{Excl}, {aside}.",
    "{Intj}, I {verb} {topic}.",
    "{Intj}, I am {adj} about {topic}.",
)

#: Lexically neutral sentences: one pool for every label (plus :data:`_NEUTRAL_PARTS` combinations).
NEUTRAL_SENTENCES = (
    "Please close the window when you leave.",
    "The keys are on the kitchen table.",
    "I need to buy milk and bread.",
    "We usually take the second street on the left.",
    "The report has twelve pages.",
    "She moved to a new apartment in March.",
    "Turn left at the next corner.",
    "The store opens at nine.",
    "Did you put the letters in the box?",
    "He wrote his name on the form.",
    "There are four chairs in the room.",
    "I will call you when I get home.",
    "The car is parked behind the building.",
    "We talked about the schedule for next week.",
    "The meeting is in room three.",
    "Can you tell me what time it is?",
    "The file is on the second shelf.",
    "They painted the fence on Sunday.",
    "I have to check the calendar first.",
    "The coffee machine is next to the door.",
    "Where did you leave the umbrella?",
    "The plants need water twice a week.",
    "My phone number has changed.",
    "We will take the early train.",
)
_NEUTRAL_PARTS = (
    (
        "The train",
        "The bus",
        "My sister",
        "Your brother",
        "The doctor",
        "The package",
        "Our neighbour",
        "The teacher",
        "The manager",
        "The delivery",
    ),
    ("will be here", "came back", "is expected", "was delayed", "got here", "was moved"),
    (
        "at seven",
        "on Tuesday",
        "tomorrow morning",
        "after lunch",
        "next week",
        "around noon",
        "this afternoon",
        "in an hour",
        "last night",
    ),
)


def _fill(template: str, words: dict[str, tuple[str, ...]], rng: np.random.Generator) -> str:
    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    slots = {
        "adj": pick(words["adj"]),
        "intj": pick(words["intj"]),
        "excl": pick(words["excl"]),
        "verb": pick(words["verb"]),
        "topic": pick(TOPICS),
        "aside": pick(ASIDES),
    }
    slots.update({k.capitalize(): v[0].upper() + v[1:] for k, v in list(slots.items())})
    return template.format(**slots)


def _neutral_sentence(rng: np.random.Generator) -> str:
    # Half hand-written sentences, half "subject + event + time" combinations (540 of them).
    if rng.random() < 0.5:
        return NEUTRAL_SENTENCES[int(rng.integers(len(NEUTRAL_SENTENCES)))]
    subj, event, time = (part[int(rng.integers(len(part)))] for part in _NEUTRAL_PARTS)
    return f"{subj} {event} {time}."


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
                text = _fill(template, LEXICON[word_emotion], rng)
            else:
                text = _neutral_sentence(rng)
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

#: espeak-ng amplitude (-a): low enough that loud emotions have headroom before the limiter.
_ESPEAK_AMPLITUDE = 50
#: Silence threshold for trimming espeak-ng's own leading/trailing silence.
_TRIM_THRESHOLD = 1e-3
#: Longest speech (s) before padding: slower renderings are re-spoken faster to keep clips short.
MAX_SPEECH_SECONDS = 3.5


def _espeak_binary() -> str:
    name = os.environ.get(ESPEAK_ENV, "espeak-ng")
    found = shutil.which(name)
    if found is None:
        raise SynthError(
            f"espeak-ng not found ({name!r} is not on PATH): install the Debian/Ubuntu package "
            "`espeak-ng` (sudo apt-get install espeak-ng; macOS: brew install espeak-ng)"
        )
    return found


def _espeak_command(binary: str, plan: UtterancePlan, rate: int) -> list[str]:
    ssml = f'<speak><prosody range="{plan.range_pct}%">{escape(plan.transcript)}</prosody></speak>'
    return [
        binary,
        "-m",  # SSML input: pitch range has no command-line flag
        "-v",
        plan.voice,
        "-p",
        str(plan.pitch),
        "-s",
        str(rate),
        "-a",
        str(_ESPEAK_AMPLITUDE),
        "-g",
        str(plan.gap),
        "--stdout",
        ssml,
    ]


def _limit(x: np.ndarray, knee: float = 0.9) -> np.ndarray:
    """Soft limiter above ``knee`` (an overdriven microphone, not hard digital clipping)."""
    mag = np.abs(x)
    over = mag > knee
    if np.any(over):
        head = 1.0 - knee
        x = x.copy()
        x[over] = np.sign(x[over]) * (knee + head * np.tanh((mag[over] - knee) / head))
    return x


def _speak(binary: str, plan: UtterancePlan, rate: int) -> tuple[np.ndarray, int]:
    """Run espeak-ng; returns its (N,) float32 output with the silence around it trimmed."""
    cmd = _espeak_command(binary, plan, rate)
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SynthError(f"espeak-ng failed for utterance {plan.id} ({plan.voice}): {err}") from err
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or not proc.stdout:
        raise SynthError(
            f"espeak-ng failed for utterance {plan.id} (voice {plan.voice}, "
            f"exit {proc.returncode}): {stderr or 'no audio and no message'}"
        )
    try:
        wav, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    except Exception as err:  # soundfile raises several types for garbage input
        raise SynthError(
            f"espeak-ng gave unreadable audio for utterance {plan.id} ({err}); stderr: {stderr}"
        ) from err
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    voiced = np.flatnonzero(np.abs(wav) > _TRIM_THRESHOLD)
    if voiced.size == 0:
        raise SynthError(f"espeak-ng produced silence for utterance {plan.id}: {plan.transcript!r}")
    return wav[voiced[0] : voiced[-1] + 1], sr


def _render(plan: UtterancePlan, binary: str, path: Path) -> tuple[float, int]:
    """Synthesise one utterance to ``path`` (16 kHz mono PCM_16).

    Returns:
        (duration in seconds, speaking rate actually used in words per minute).
    """
    rate = plan.rate
    wav, sr = _speak(binary, plan, rate)
    if wav.size / sr > MAX_SPEECH_SECONDS:
        # Deterministic (depends on the plan only): re-speak just fast enough to fit.
        rate = int(math.ceil(rate * wav.size / sr / MAX_SPEECH_SECONDS))
        wav, sr = _speak(binary, plan, rate)
    if sr != SAMPLE_RATE:
        wav = soxr.resample(wav, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    # Vocal effort as spectral tilt: first-order shelf y = x + c (x - x[n-1]); DC gain stays 1.
    c = np.float32(plan.tilt)
    wav = wav + c * np.diff(wav, prepend=wav[:1])
    wav = _limit(wav * np.float32(10 ** (plan.gain_db / 20)))
    rng = np.random.default_rng(plan.seed)
    lead, trail = (int(rng.uniform(0.1, 0.3) * SAMPLE_RATE) for _ in range(2))
    out = np.concatenate(
        [np.zeros(lead, np.float32), wav.astype(np.float32), np.zeros(trail, np.float32)]
    )
    noise = rng.standard_normal(out.size).astype(np.float32) * np.float32(
        10 ** (plan.noise_db / 20)
    )
    out = np.clip(out + noise, -1.0, 1.0)
    write_wav(path, out, SAMPLE_RATE)
    return out.size / SAMPLE_RATE, rate


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
    binary = _espeak_binary()
    workers = max(1, workers or os.cpu_count() or 1)
    for sp in sorted({p.speaker for p in plans}):
        (out_dir / "wav" / sp).mkdir(parents=True, exist_ok=True)

    rendered: dict[str, tuple[float, int]] = {}
    if progress:
        from rich.console import Console
        from rich.progress import Progress

        console = Console(stderr=True)

    def job(plan: UtterancePlan) -> tuple[str, tuple[float, int]]:
        return plan.id, _render(plan, binary, _wav_path(out_dir, plan))

    # Threads suffice: the heavy part runs in espeak-ng subprocesses and GIL-free soxr/numpy.
    started = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        # map() yields in plan order: the first failing utterance in the plan is the one reported.
        results = pool.map(job, plans)
        if progress:
            with Progress(console=console) as bar:
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
        "espeak": _espeak_version(binary),
        "plan": [
            {**asdict(p), "duration": round(rendered[p.id][0], 4), "rate_used": rendered[p.id][1]}
            for p in plans
        ],
    }
    recipe["plan_sha256"] = hashlib.sha256(
        json.dumps(recipe["plan"], sort_keys=True).encode()
    ).hexdigest()
    write_json_atomic(out_dir / "synthesis.json", recipe, indent=1, sort_keys=True)
    if progress:
        minutes = sum(d for d, _ in rendered.values()) / 60
        console.print(
            f"wrote {len(plans)} utterances ({minutes:.1f} min of audio), {speakers} speakers, "
            f"labels {', '.join(LABELS)} in {time.perf_counter() - started:.1f} s: {manifest}"
        )
    return manifest


def _espeak_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, timeout=10, check=False)
        return out.stdout.decode("utf-8", "replace").strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"

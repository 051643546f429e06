"""ESD (Emotional Speech Dataset, Zhou et al. 2021), English part -> manifest.

Layout (the release's ``Emotion Speech Dataset/`` folder = ROOT)::

    ROOT/<speaker>/<speaker>.txt                         "0011_000001<TAB>text<TAB>Neutral"
    ROOT/<speaker>/<Emotion>/[train|evaluation|test/]<speaker>_<number>.wav

Speakers 0001-0010 are Mandarin, 0011-0020 English (the release README); only the English
speakers are read. Emotions: Angry, Happy, Neutral, Sad, Surprise (the folder name; the text
file's third column where the folder is not an emotion). The train/evaluation/test folders split
each speaker's sentences, not the speakers, so they are not written as an official split.
"""

from __future__ import annotations

import re
from pathlib import Path

from emodistill.corpora.base import CorpusRead, CorpusSpec, read_text_lenient
from emodistill.corpora.by_name import Made, name_utterance, read_by_name

NAME = re.compile(r"^(?P<speaker>\d{4})_(?P<number>\d{6})$")
SCHEME = "the ESD rule (0011_000351)"
NOTE = "Expected 0011/Angry/[train/]0011_000351.wav-style paths."
ENGLISH = {f"{n:04d}" for n in range(11, 21)}
EMOTIONS = {
    "angry": "angry",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "surprise": "surprise",
}


def read_texts(speaker_dir: Path) -> dict[str, tuple[str, str]]:
    """Utterance id -> (text, emotion word) from ``<speaker>/<speaker>.txt`` (tab-separated)."""
    path = speaker_dir / f"{speaker_dir.name}.txt"
    out: dict[str, tuple[str, str]] = {}
    if not path.is_file():
        return out
    for line in read_text_lenient(path).splitlines():
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) >= 3 and NAME.match(parts[0]):
            out[parts[0]] = (parts[1], parts[2])
    return out


def read(root: Path) -> CorpusRead:
    """All English ESD wavs below ``root``, with the speaker table's transcripts."""
    texts: dict[str, dict[str, tuple[str, str]]] = {}

    def make(m: re.Match[str], path: Path) -> Made:
        speaker = m["speaker"]
        if speaker not in ENGLISH:
            return "Mandarin speaker (0001-0010; only the English part is read)"
        speaker_dir = next((p for p in path.parents if p.name == speaker), None)
        if speaker_dir is not None and speaker not in texts:
            texts[speaker] = read_texts(speaker_dir)
        text, word = texts.get(speaker, {}).get(path.stem, ("", ""))
        folder = next((p.name for p in path.parents if p.name.lower() in EMOTIONS), word)
        label = EMOTIONS.get(folder.lower())
        if label is None:
            return "emotion unknown (no emotion folder, not in the speaker's .txt)"
        return name_utterance(path, label, speaker, text or None)

    return read_by_name(root, NAME, make, SCHEME)


SPEC = CorpusSpec("esd", "ESD (English)", read, note=NOTE)

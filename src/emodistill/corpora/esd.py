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

from emodistill.corpora.base import (
    IDENTITY_4,
    CorpusRead,
    CorpusSpec,
    audio_files,
    read_text_lenient,
)
from emodistill.corpora.manifest import Utterance

NAME = re.compile(r"^(?P<speaker>\d{4})_(?P<number>\d{6})$")
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
    result = CorpusRead()
    texts: dict[str, dict[str, tuple[str, str]]] = {}
    seen: set[str] = set()
    for path in audio_files(root):
        rel = path.relative_to(root)
        m = NAME.match(path.stem)
        if m is None:
            result.skip("name does not follow the ESD rule (0011_000351)", rel)
            continue
        speaker = m["speaker"]
        if speaker not in ENGLISH:
            result.skip("Mandarin speaker (0001-0010; only the English part is read)", rel)
            continue
        speaker_dir = next((p for p in path.parents if p.name == speaker), None)
        if speaker_dir is not None and speaker not in texts:
            texts[speaker] = read_texts(speaker_dir)
        text, word = texts.get(speaker, {}).get(path.stem, ("", ""))
        folder = next((p.name for p in path.parents if p.name.lower() in EMOTIONS), word)
        label = EMOTIONS.get(folder.lower())
        if label is None:
            result.skip("emotion unknown (no emotion folder, not in the speaker's .txt)", rel)
            continue
        if path.stem in seen:
            result.skip("duplicate file name (an earlier copy was kept)", rel)
            continue
        seen.add(path.stem)
        result.utterances.append(
            Utterance(
                id=path.stem,
                path=path.absolute(),
                label=label,
                speaker=speaker,
                transcript=text or None,
            )
        )
    return result


SPEC = CorpusSpec(
    name="esd",
    title="ESD (English)",
    read=read,
    four_class=IDENTITY_4,
    default_folds={"scheme": "speaker", "val_speakers": 1},
    note="Expected 0011/Angry/[train/]0011_000351.wav-style paths.",
)

"""Public-corpus loaders on tiny trees written in each release's exact file naming.

Every test writes its tree (0.05 s wavs), reads it with the loader, and checks counts, labels,
speakers, transcripts, what was skipped, and that the corpus's default folds keep each speaker on
one side of every fold.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from rich.console import Console
from typer.testing import CliRunner

from emodistill.cli.app import app
from emodistill.corpora.base import CorpusError, parse_label_map, prepare_corpus, read_corpus
from emodistill.corpora.manifest import Manifest, load_manifest
from emodistill.corpora.registry import CORPORA, get_corpus
from emodistill.corpora.splits import fold_utterances, make_folds


def _wav(path: Path, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(sr // 20, dtype=np.float32), sr)
    return path


def _read(name: str, root: Path, classes: str = "4", label_map: str | None = None):
    return read_corpus(get_corpus(name), root, classes=classes, label_map=label_map)


def _check_default_folds(name: str, utterances) -> list:
    """The corpus's default folds: every fold keeps test, validation and training speakers
    apart, and (speaker-based schemes) every speaker is tested exactly once."""
    manifest = Manifest(path=None, utterances=list(utterances))
    folds = make_folds(manifest, **get_corpus(name).default_folds)
    tested: list[str] = []
    for fold in folds:
        train, val, test = fold_utterances(manifest, fold)
        test_spk = {u.speaker for u in test}
        assert test_spk == set(fold.test_speakers)
        if not fold.by_split:
            assert not test_spk & {u.speaker for u in train + val}
            assert not {u.speaker for u in val} & {u.speaker for u in train}
            tested += sorted(test_spk)
    if not folds[0].by_split:
        assert sorted(tested) == manifest.speakers()
    return folds


def test_every_registered_corpus_has_a_command():
    result = CliRunner().invoke(app, ["corpus", "--help"])
    assert result.exit_code == 0
    for name in CORPORA:
        assert name in result.output


# --------------------------------------------------------------------------- EmoDB


def test_emodb(tmp_path):
    root = tmp_path / "emodb"
    for name in ("03a01Fa", "03a02Wb", "03b10Nc", "08a04Ta", "08a05La", "09b01Ea", "09b09Na"):
        _wav(root / "wav" / f"{name}.wav")
    _wav(root / "wav" / "._03a01Fa.wav")  # macOS companion: never read
    _wav(root / "wav" / "readme.wav")  # not the naming rule
    utts, summary = _read("emodb", root)
    by_id = {u.id: u for u in utts}
    assert sorted(by_id) == ["03a01Fa", "03a02Wb", "03b10Nc", "08a04Ta", "09b09Na"]
    assert {u.label for u in utts} == {"happy", "angry", "neutral", "sad"}
    assert by_id["03a02Wb"].label == "angry" and by_id["08a04Ta"].label == "sad"
    assert by_id["03a01Fa"].speaker == "03" and by_id["08a04Ta"].speaker == "08"
    assert by_id["03a01Fa"].transcript == "Der Lappen liegt auf dem Eisschrank."
    assert by_id["03b10Nc"].transcript == "Die wird auf dem Platz sein, wo wir sie immer hinlegen."
    assert summary["dropped_labels"] == {"boredom": 1, "disgust": 1}
    assert sum(summary["skipped"].values()) == 1  # readme.wav
    every, _ = _read("emodb", root, classes="all")
    assert len(every) == 7 and {"boredom", "disgust"} <= {u.label for u in every}
    folds = _check_default_folds("emodb", utts)
    assert [f.test_speakers for f in folds] == [("03",), ("08",), ("09",)]


# --------------------------------------------------------------------------- RAVDESS


def test_ravdess_speech_only(tmp_path):
    root = tmp_path / "ravdess"
    names = {
        "Actor_01": ["03-01-01-01-01-01-01", "03-01-05-02-02-01-01", "03-01-02-01-01-01-01"],
        "Actor_02": ["03-01-03-01-02-02-02", "03-01-04-02-01-01-02", "03-02-03-01-01-01-02"],
        "Actor_03": ["03-01-04-01-01-02-03", "03-01-06-01-01-01-03"],
    }
    for actor, files in names.items():
        for f in files:
            _wav(root / actor / f"{f}.wav")
    utts, summary = _read("ravdess", root)
    by_id = {u.id: u for u in utts}
    assert len(utts) == 5
    assert by_id["03-01-05-02-02-01-01"].label == "angry"
    assert by_id["03-01-05-02-02-01-01"].transcript == "Dogs are sitting by the door."
    assert by_id["03-01-01-01-01-01-01"].transcript == "Kids are talking by the door."
    assert by_id["03-01-03-01-02-02-02"].speaker == "02"
    assert summary["skipped"] == {"song, not speech (vocal channel 02)": 1}
    assert summary["dropped_labels"] == {"calm": 1, "fear": 1}
    every, _ = _read("ravdess", root, classes="all")
    assert {u.label for u in every} == {"neutral", "calm", "happy", "sad", "angry", "fear"}
    _check_default_folds("ravdess", utts)


def test_ravdess_linked_actor_folders(tmp_path):
    """A corpus root of symbolic links to the speaker folders (and a linked file) is read."""
    real = tmp_path / "downloads"
    _wav(real / "Actor_01" / "03-01-05-02-02-01-01.wav")
    _wav(real / "Actor_02" / "03-01-03-01-02-02-02.wav")
    _wav(real / "loose" / "03-01-04-01-01-02-03.wav")
    root = tmp_path / "ravdess"
    root.mkdir()
    (root / "Actor_01").symlink_to(real / "Actor_01", target_is_directory=True)
    (root / "Actor_02").symlink_to(real / "Actor_02", target_is_directory=True)
    (root / "again").symlink_to(real / "Actor_02", target_is_directory=True)  # read once
    (root / "Actor_03").mkdir()
    (root / "Actor_03" / "03-01-04-01-01-02-03.wav").symlink_to(
        real / "loose" / "03-01-04-01-01-02-03.wav"
    )
    (root / "Actor_03" / "loop").symlink_to(root, target_is_directory=True)  # no endless walk
    utts, _ = _read("ravdess", root)
    assert sorted(u.id for u in utts) == [
        "03-01-03-01-02-02-02",
        "03-01-04-01-01-02-03",
        "03-01-05-02-02-01-01",
    ]
    assert sorted(u.speaker for u in utts) == ["01", "02", "03"]


# --------------------------------------------------------------------------- CREMA-D


def test_cremad_groups_of_actors(tmp_path):
    root = tmp_path / "CREMA-D"
    emotions = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
    for i, actor in enumerate(range(1001, 1012)):  # 11 actors: 10 default groups need >= 10
        _wav(root / "AudioWAV" / f"{actor}_DFA_{emotions[i % 6]}_XX.wav")
        _wav(root / "AudioWAV" / f"{actor}_IEO_{emotions[(i + 3) % 6]}_HI.wav")
    (root / "AudioMP3").mkdir()
    (root / "AudioMP3" / "1001_DFA_ANG_XX.mp3").write_bytes(b"ID3")  # not a wav: not read
    _wav(root / "AudioWAV" / "1001_XYZ_ANG_XX.wav")  # unknown sentence code
    utts, summary = _read("crema-d", root, classes="all")
    assert len(utts) == 22 and len({u.speaker for u in utts}) == 11
    by_id = {u.id: u for u in utts}
    assert by_id["1001_DFA_ANG_XX"].transcript == "Don't forget a jacket."
    assert by_id["1001_IEO_HAP_HI"].transcript == "It's eleven o'clock."
    assert by_id["1002_DFA_DIS_XX"].label == "disgust"
    assert summary["skipped"] == {"unknown sentence code 'XYZ'": 1}
    four, summary4 = _read("crema-d", root)
    assert {u.label for u in four} == {"neutral", "happy", "angry", "sad"}
    assert len(four) + sum(summary4["dropped_labels"].values()) == 22
    folds = _check_default_folds("crema-d", utts)
    assert len(folds) == 10


# --------------------------------------------------------------------------- TESS


def test_tess_two_speakers(tmp_path):
    root = tmp_path / "TESS Toronto emotional speech set data"
    for spk, folder, word, emo in [
        ("OAF", "OAF_angry", "back", "angry"),
        ("OAF", "OAF_Pleasant_surprise", "bar", "ps"),
        ("OAF", "OAF_neutral", "base", "neutral"),
        ("YAF", "YAF_sad", "bath", "sad"),
        ("YAF", "YAF_happy", "bean", "happy"),
        ("YAF", "YAF_fear", "beg", "fear"),
    ]:
        _wav(root / folder / f"{spk}_{word}_{emo}.wav")
    # A nested copy of the release (as some mirrors have it) is not read twice.
    _wav(root / "TESS Toronto emotional speech set data" / "OAF_angry" / "OAF_back_angry.wav")
    utts, summary = _read("tess", root)
    by_id = {u.id: u for u in utts}
    assert sorted(by_id) == ["OAF_back_angry", "OAF_base_neutral", "YAF_bath_sad", "YAF_bean_happy"]
    assert by_id["OAF_back_angry"].transcript == "Say the word back."
    assert {u.speaker for u in utts} == {"OAF", "YAF"}
    assert summary["skipped"] == {"duplicate file name (an earlier copy was kept)": 1}
    every, _ = _read("tess", root, classes="all")
    assert {u.id: u.label for u in every}["OAF_bar_ps"] == "surprise"
    folds = _check_default_folds("tess", utts)
    assert [f.test_speakers for f in folds] == [("OAF",), ("YAF",)]
    assert all(f.val_speakers == () for f in folds)


# --------------------------------------------------------------------------- SAVEE


@pytest.mark.parametrize("flat", [False, True])
def test_savee_both_layouts(tmp_path, flat):
    root = tmp_path / "savee"
    files = [("DC", "a01"), ("DC", "sa02"), ("JE", "n01"), ("JE", "su03"), ("KL", "h05")]
    for spk, stem in files:
        _wav(
            root / "ALL" / f"{spk}_{stem}.wav" if flat else root / "AudioData" / spk / f"{stem}.wav"
        )
    if not flat:
        _wav(root / "AudioData" / "XX" / "a01.wav")  # not one of the four speakers
    utts, summary = _read("savee", root)
    by_id = {u.id: u for u in utts}
    assert sorted(by_id) == ["DC_a01", "DC_sa02", "JE_n01", "KL_h05"]
    assert by_id["DC_sa02"].label == "sad" and by_id["KL_h05"].label == "happy"
    assert by_id["JE_n01"].speaker == "JE"
    assert all(u.transcript is None for u in utts)  # no reliable public sentence table
    assert summary["dropped_labels"] == {"surprise": 1}
    assert sum(summary["skipped"].values()) == (0 if flat else 1)
    _check_default_folds("savee", utts)


# --------------------------------------------------------------------------- JL-Corpus


def test_jl_corpus_with_txt_transcripts_and_map(tmp_path):
    root = tmp_path / "JL" / "Raw JL corpus (unchecked and unannotated)" / "JL(wav+txt)"
    files = {
        "female1_angry_10a_1": "Carl leaps into a jeep.",
        "female1_excited_3b_2": "We'll stop in a couple of minutes.",
        "female2_sad_1a_1": "Sharon wants ten cookies.",
        "male1_neutral_5a_1": None,  # no .txt beside it
        "male2_happy_7a_2": "Tom likes bikes.",
        "male2_apologetic_2a_1": "I am sorry.",
    }
    for stem, text in files.items():
        _wav(root / f"{stem}.wav")
        if text:
            (root / f"{stem}.txt").write_text(text + "\n")
    utts, summary = _read("jl-corpus", tmp_path / "JL")
    by_id = {u.id: u for u in utts}
    assert sorted(by_id) == [
        "female1_angry_10a_1",
        "female2_sad_1a_1",
        "male1_neutral_5a_1",
        "male2_happy_7a_2",
    ]
    assert by_id["female1_angry_10a_1"].transcript == "Carl leaps into a jeep."
    assert by_id["male1_neutral_5a_1"].transcript is None
    assert by_id["male2_happy_7a_2"].speaker == "male2"
    assert summary["dropped_labels"] == {"excited": 1, "apologetic": 1}
    assert summary["missing_transcripts"] == 1
    merged, summary = _read("jl-corpus", tmp_path / "JL", label_map="excited=happy,apologetic=-")
    assert {u.id: u.label for u in merged}["female1_excited_3b_2"] == "happy"
    assert summary["dropped_labels"] == {"apologetic (--map)": 1}
    with pytest.raises(CorpusError, match="bored"):
        _read("jl-corpus", tmp_path / "JL", label_map="bored=neutral")
    _check_default_folds("jl-corpus", utts)


def test_parse_label_map():
    assert parse_label_map("excited=happy, frustrated=-,x=") == {
        "excited": "happy",
        "frustrated": None,
        "x": None,
    }
    with pytest.raises(CorpusError, match="OLD=NEW"):
        parse_label_map("excited")


# --------------------------------------------------------------------------- ESD


def test_esd_english_part(tmp_path):
    root = tmp_path / "Emotion Speech Dataset"
    table = {
        "0011": [("0011_000001", "Neutral", "What a fine day."), ("0011_000351", "Angry", "No.")],
        "0012": [("0012_000701", "Happy", "Yes!"), ("0012_001401", "Surprise", "Really?")],
        "0015": [("0015_001051", "Sad", "Oh dear.")],
    }
    for spk, rows in table.items():
        lines = "".join(f"{uid}\t{text}\t{emo}\n" for uid, emo, text in rows)
        # One speaker table in UTF-16 (as some copies are), the others UTF-8.
        enc = "utf-16" if spk == "0012" else "utf-8"
        (root / spk).mkdir(parents=True)
        (root / spk / f"{spk}.txt").write_bytes(lines.encode(enc))
        for i, (uid, emo, _) in enumerate(rows):
            sub = ("train", "evaluation", "test")[i % 3]
            _wav(root / spk / emo / sub / f"{uid}.wav")
    _wav(root / "0001" / "Angry" / "train" / "0001_000351.wav")  # Mandarin speaker
    utts, summary = _read("esd", root)
    by_id = {u.id: u for u in utts}
    assert sorted(by_id) == ["0011_000001", "0011_000351", "0012_000701", "0015_001051"]
    assert by_id["0011_000001"].transcript == "What a fine day."
    assert by_id["0012_000701"].transcript == "Yes!" and by_id["0012_000701"].label == "happy"
    assert by_id["0015_001051"].speaker == "0015" and by_id["0015_001051"].label == "sad"
    assert summary["dropped_labels"] == {"surprise": 1}
    assert list(summary["skipped"]) == [
        "Mandarin speaker (0001-0010; only the English part is read)"
    ]
    _check_default_folds("esd", utts)


# --------------------------------------------------------------------------- MSP-Podcast


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue())


def test_msp_podcast_official_split(tmp_path):
    root = tmp_path / "MSP-PODCAST"
    header = ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]
    rows = [
        ["MSP-PODCAST_0001_0008.wav", "N", "4", "4", "4", "127", "Male", "Train"],
        ["MSP-PODCAST_0001_0019.wav", "H", "5", "6", "5", "127", "Male", "Train"],
        ["MSP-PODCAST_0002_0001.wav", "A", "6", "2", "6", "3", "Female", "Development"],
        ["MSP-PODCAST_0003_0001.wav", "S", "2", "2", "3", "Unknown", "Unknown", "Test1"],
        ["MSP-PODCAST_0004_0001.wav", "X", "4", "4", "4", "55", "Male", "Train"],
        ["MSP-PODCAST_0005_0001.wav", "U", "5", "5", "5", "56", "Female", "Test1"],
        ["MSP-PODCAST_0006_0001.wav", "N", "4", "4", "4", "57", "Male", "Test2"],
        ["MSP-PODCAST_0007_0001.wav", "N", "4", "4", "4", "58", "Male", "Train"],  # no audio
    ]
    _csv(root / "Labels" / "labels_consensus.csv", header, rows)
    for row in rows[:-1]:
        _wav(root / "Audios" / row[0])
    (root / "Transcripts").mkdir()
    (root / "Transcripts" / "MSP-PODCAST_0001_0008.txt").write_text("so I said\nokay\n")
    utts, summary = _read("msp-podcast", root)
    by_id = {u.id: u for u in utts}
    assert sorted(by_id) == [
        "MSP-PODCAST_0001_0008",
        "MSP-PODCAST_0001_0019",
        "MSP-PODCAST_0002_0001",
        "MSP-PODCAST_0003_0001",
        "MSP-PODCAST_0006_0001",
    ]
    assert by_id["MSP-PODCAST_0001_0008"].transcript == "so I said okay"
    assert by_id["MSP-PODCAST_0003_0001"].speaker == "Unknown"
    assert summary["per_split"] == {"test": 1, "test2": 1, "train": 2, "validation": 1}
    assert summary["dropped_labels"] == {"surprise": 1}
    assert summary["skipped"] == {
        "EmoClass 'X' (no consensus)": 1,
        "audio file missing under Audios/": 1,
    }
    # The split survives the manifest round trip and gives the official fold.
    out = prepare_corpus(get_corpus("msp-podcast"), root, tmp_path / "m.csv", console=_quiet())
    m = load_manifest(out.path)
    assert {u.id: u.split for u in m}["MSP-PODCAST_0002_0001"] == "validation"
    (fold,) = _check_default_folds("msp-podcast", m.utterances)
    train, val, test = fold_utterances(m, fold)
    assert [u.id for u in test] == ["MSP-PODCAST_0003_0001"]  # Test2 is in no part
    assert len(train) == 2 and [u.id for u in val] == ["MSP-PODCAST_0002_0001"]


# --------------------------------------------------------------------------- MELD


def test_meld_csv_and_audio(tmp_path):
    root = tmp_path / "MELD.Raw"
    header = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
              "Utterance_ID", "Season", "Episode", "StartTime", "EndTime"]  # fmt: skip
    data = {
        "train": [
            ["1", "also I was the point person", "Chandler", "neutral", "neutral", "0", "0"],
            [
                "2",
                "You must've had your hands full.",
                "The Interviewer",
                "joy",
                "positive",
                "0",
                "1",
            ],
            ["3", "That I did.", "Chandler", "surprise", "positive", "0", "2"],
        ],
        "dev": [["1", "Oh my God!", "Monica", "anger", "negative", "0", "0"]],
        "test": [
            ["1", "Why do all you're coffee mugs", "Mark", "sadness", "negative", "0", "0"],
            ["2", "Oh. That's so Monica", "Rachel", "neutral", "neutral", "0", "1"],
        ],
    }
    folders = {"train": "train_splits", "dev": "dev_splits_complete",
               "test": "output_repeated_splits_test"}  # fmt: skip
    for split, rows in data.items():
        _csv(root / f"{split}_sent_emo.csv", header, [r + ["1", "1", "0", "1"] for r in rows])
        for r in rows:
            clip = f"dia{r[5]}_utt{r[6]}"
            (root / folders[split]).mkdir(parents=True, exist_ok=True)
            (root / folders[split] / f"{clip}.mp4").write_bytes(b"\0")
            if not (split == "test" and r[6] == "1"):  # one clip is left as video only
                _wav(root / folders[split] / f"{clip}.wav")
    utts, summary = _read("meld", root)
    by_id = {u.id: u for u in utts}
    assert sorted(by_id) == [
        "dev_dia0_utt0",
        "test_dia0_utt0",
        "train_dia0_utt0",
        "train_dia0_utt1",
    ]
    assert by_id["train_dia0_utt1"].label == "happy"
    assert by_id["train_dia0_utt1"].speaker == "The Interviewer"
    assert (
        by_id["dev_dia0_utt0"].transcript == "Oh my God!"
        and by_id["dev_dia0_utt0"].label == "angry"
    )
    assert by_id["test_dia0_utt0"].split == "test" and by_id["dev_dia0_utt0"].split == "validation"
    assert summary["skipped"] == {"video only: extract its audio to .wav": 1}
    assert summary["dropped_labels"] == {"surprise": 1}
    _check_default_folds("meld", utts)


# --------------------------------------------------------------------------- errors and CLI


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def test_empty_tree_and_bad_classes(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no EmoDB utterances"):
        _read("emodb", tmp_path / "empty")
    with pytest.raises(CorpusError, match="not found"):
        _read("emodb", tmp_path / "missing")
    _wav(tmp_path / "e" / "03a01Fa.wav")
    _wav(tmp_path / "e" / "08a01Fa.wav")
    with pytest.raises(CorpusError, match="--classes"):
        _read("emodb", tmp_path / "e", classes="7")


def test_cli_corpus_writes_manifest(tmp_path):
    root = tmp_path / "emodb"
    for name in ("03a01Fa", "03a02Wb", "08a04Ta", "08b10La"):
        _wav(root / "wav" / f"{name}.wav")
    out = tmp_path / "m.csv"
    args = ["corpus", "emodb", str(root), "--out", str(out), "--classes", "all"]
    args += ["--map", "boredom=neutral"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    m = load_manifest(out)
    assert len(m) == 4 and {u.id: u.label for u in m}["08b10La"] == "neutral"
    assert m.speakers() == ["03", "08"]
    bad = CliRunner().invoke(app, ["corpus", "emodb", str(tmp_path / "nope"), "--out", str(out)])
    assert bad.exit_code == 2 and "not found" in bad.output


def test_official_scheme_needs_every_part(tmp_path):
    from emodistill.corpora.manifest import Utterance

    def utt(i: int, split: str | None) -> Utterance:
        return Utterance(f"u{i}", tmp_path / f"u{i}.wav", "neutral", f"s{i}", split=split)

    with pytest.raises(ValueError, match="needs a 'split' column"):
        make_folds(Manifest(None, [utt(0, None), utt(1, None)]), scheme="official")
    with pytest.raises(ValueError, match="no validation"):
        make_folds(Manifest(None, [utt(0, "train"), utt(1, "test")]), scheme="official")
    (fold,) = make_folds(
        Manifest(None, [utt(0, "Train"), utt(1, "dev"), utt(2, "test"), utt(3, "test2")]),
        scheme="official",
    )
    assert (fold.train_speakers, fold.val_speakers, fold.test_speakers) == (
        ("s0",),
        ("s1",),
        ("s2",),
    )

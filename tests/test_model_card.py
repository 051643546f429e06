"""Model cards: written from the run's files, numbers equal results.json, shown by predict and
/info; a folder without a card still loads and predicts."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest
from test_distill import _one_thread, prepared, reference  # noqa: F401 - shared fixtures
from test_inference import SR, build_tiny_model, tone

from emodistill.corpora.manifest import load_manifest
from emodistill.evaluation.model_card import write_model_card
from emodistill.evaluation.report import pct
from emodistill.models.card import card_summary, split_front_matter
from emodistill.models.folder import card_path


def _card(folder):
    return split_front_matter(card_path(folder).read_text())


def test_cv_cards_carry_the_numbers_of_results_json(prepared, reference):  # noqa: F811
    results = json.loads((reference / "results.json").read_text())
    teachers = json.loads((reference / "teachers.json").read_text())
    for fold in ("g1", "g2"):
        front, body = _card(reference / fold / "student")
        assert front["library_name"] == "emodistill"
        assert front["pipeline_tag"] == "audio-classification"
        assert front["license"] == "other"  # a local test encoder: no known upstream
        assert "base_model" not in front
        metrics = {m["type"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
        assert metrics == {"accuracy": results["mean"]["wa"], "recall": results["mean"]["ua"]}
        for f in results["folds"]:
            assert f"| {f['fold']} | {f['n']} | {pct(f['wa'])} | {pct(f['ua'])} |" in body
        own = next(r for r in results["runs"] if r["fold"] == fold and r["seed"] == 0)
        assert f"test WA {pct(own['wa'])}, UA {pct(own['ua'])}" in body
        for kind in ("linguistic", "prosodic"):
            ua = teachers["mean"][kind]["ua"]
            assert re.search(rf"\| {kind} \| [^|]+ \| [^|]+ \| {re.escape(pct(ua))} ± ", body)
        assert "Corpus manifest `corpus/manifest.csv`: 32 utterances, 4 speakers." in body
        assert "Config `tiny`" in body and "synthetic" not in body.lower()
        summary = card_summary(reference / fold / "student")
        assert f"test UA {pct(results['mean']['ua'])} ± {pct(results['std']['ua'])} %" in summary


def test_card_marks_a_synthetic_corpus_and_carries_the_paired_comparison(
    prepared,  # noqa: F811
    reference,  # noqa: F811
    tmp_path,
):
    from emodistill.evaluation.compare import compare_results
    from emodistill.runs.layout import compare_path

    run = tmp_path / "run"
    shutil.copytree(reference / "g1" / "student", run / "g1" / "student")
    for name in ("results.json", "teachers.json"):
        shutil.copy(reference / name, run / name)
    results = json.loads((run / "results.json").read_text())
    plain = {**results, "runs": [{**r, "ua": r["ua"] - 0.1} for r in results["runs"]]}
    (run / "compare-full-vs-no_teachers.json").write_text(
        json.dumps(compare_results(results, plain, "full", "no_teachers"))
    )
    assert compare_path(run, "full", "no_teachers").is_file()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    manifest = dataclasses.replace(
        load_manifest(prepared["manifest"]), path=corpus / "manifest.csv"
    )
    folder = run / "g1" / "student"
    write_model_card(folder, run, manifest)
    assert "synthetic" not in card_path(folder).read_text().lower()
    (corpus / "synthesis.json").write_text("{}")  # what the synthetic corpus leaves
    write_model_card(folder, run, manifest)
    front, body = _card(folder)
    assert "synthetic-speech" in front["tags"]
    assert card_summary(folder).endswith("synthetic espeak-ng speech only: not for real voices.")
    assert "Not for real voices" in body
    assert "Paired against plain fine-tuning" in body and "UA +10.00 points" in body


def test_folder_without_card_loads_predicts_and_save_pretrained_writes_one(tmp_path, capsys):
    from fastapi.testclient import TestClient

    from emodistill.cli.predict import run_predict
    from emodistill.inference.model import EmoDistill
    from emodistill.service.app import create_app

    old = build_tiny_model(tmp_path / "old")
    assert not card_path(old).exists()
    model = EmoDistill.from_pretrained(old)
    assert model.info()["summary"] is None
    assert model.predict(tone(0.6), sampling_rate=SR).label
    with TestClient(create_app(old)) as client:
        assert client.get("/info").json()["summary"] is None

    new = model.save_pretrained(tmp_path / "new")  # no card to carry: one from the config
    front, _ = _card(new)
    assert front["library_name"] == "emodistill" and "model-index" not in front
    summary = card_summary(new)
    assert summary.startswith("Speech-only emotion recognition (neutral, happy, angry, sad)")
    assert "no evaluation results are recorded" in summary
    with TestClient(create_app(new)) as client:
        assert client.get("/info").json()["summary"] == summary

    clip = tmp_path / "clip.wav"
    import soundfile as sf

    sf.write(clip, tone(0.6), SR)
    capsys.readouterr()
    assert run_predict(new, [str(clip)], format="json") == 0
    out = capsys.readouterr()
    assert json.loads(out.out)[0]["label"] and summary not in out.err
    assert run_predict(new, [str(clip)], format="table") == 0
    out = capsys.readouterr()
    assert f"model: {summary}" in " ".join(out.err.split()) and summary not in out.out
    # A saved copy of a carded folder carries the same card.
    again = EmoDistill.from_pretrained(new).save_pretrained(tmp_path / "again")
    assert card_path(again).read_text() == card_path(new).read_text()


@pytest.mark.parametrize(
    "encoder, base, license_",
    [
        ("embedded:whisper-tiny.en", "openai/whisper-tiny.en", "mit"),
        ("facebook/hubert-base-ls960", "facebook/hubert-base-ls960", "apache-2.0"),
        ("someone/speech-model", "someone/speech-model", "other"),
    ],
)
def test_base_model_and_license_of_the_encoder(encoder, base, license_):
    from emodistill.models.card import card_text

    facts = {"name": "m", "labels": ["a", "b"], "encoder": encoder, "variant": "full"}
    front, _ = split_front_matter(card_text(facts))
    assert front["base_model"] == base and front["license"] == license_


def test_pick_model_chooses_on_validation_never_on_test_and_copies_with_a_card(
    reference,  # noqa: F811
    tmp_path,
):
    """`emodistill pick-model RUN`: the best validation UA (g2 here), whatever the test UA;
    the first fold when the students trained on their validation speakers; --out copies the
    folder with its card. The demo's OUT/model and the recipes use the same rule."""
    from typer.testing import CliRunner

    from emodistill.cli.app import app
    from emodistill.runs.deployable import deployable_fold
    from emodistill.runs.layout import predictions_path

    run = tmp_path / "run"
    shutil.copytree(reference, run)

    def set_pred(fold, **values):
        path = predictions_path(run, fold)
        pred = json.loads(path.read_text())
        path.write_text(json.dumps({**pred, **values}))

    set_pred("g1", val_ua=0.5, metrics={"ua": 0.99, "wa": 0.99})
    set_pred("g2", val_ua=0.75, metrics={"ua": 0.10, "wa": 0.10})
    assert deployable_fold(run) == ("g2", "best validation UA")
    result = CliRunner().invoke(app, ["pick-model", str(run), "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "m")
    assert "fold g2 (best validation UA)" in result.stderr
    assert card_path(tmp_path / "m").is_file()
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == (
        run / "g2" / "student" / "model.safetensors"
    ).read_bytes()
    set_pred("g2", val_ua=0.75, trained_on_validation=True)
    assert deployable_fold(run)[0] == "g1"
    empty = CliRunner().invoke(app, ["pick-model", str(tmp_path / "m")])
    assert empty.exit_code != 0 and "no trained EmoDistill student" in empty.output

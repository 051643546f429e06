"""Every shipped preset loads, survives the checkpoint round trip and builds all three networks.

The paper presets name hub models (bert-base-uncased, HuBERT) that cannot be fetched here: their
encoders are swapped for tiny random models of the same family, so everything else the preset
sets (ResNet stages, pooling, head sizes, trainable layers) is built and run as written.
"""

from __future__ import annotations

import pytest
import torch
from factories import tiny_bert_folder, tiny_hubert_folder

from emodistill.config import Config, load_config, preset_names
from emodistill.models.linguistic import LinguisticTeacher
from emodistill.models.prosodic import ProsodicNetConfig, ProsodicResNet
from emodistill.models.student import build_student

LABELS = ["neutral", "happy", "angry", "sad"]


def test_the_shipped_presets():
    assert {"demo", "paper-hubert-base", "paper-hubert-large"} <= set(preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_preset_round_trips(name):
    cfg = load_config(name)
    assert cfg.name == name
    assert Config.from_dict(cfg.to_dict()) == cfg  # what a checkpoint stores rebuilds it
    assert load_config() == load_config("demo")  # no spec = the embedded default


def test_numbers_yaml_reads_as_strings_load_as_numbers(tmp_path):
    """PyYAML reads 1e-4 as a string; a config file (or a run's config.json passed back)
    gets the number its field declares, and a non-number is refused by file and key."""
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("preset: demo\nstudent:\n  optim:\n    lr: 1e-4\n    epochs: '7'\n")
    cfg = load_config(cfg_file)
    assert cfg.student.optim.lr == 1e-4 and isinstance(cfg.student.optim.lr, float)
    assert cfg.student.optim.epochs == 7
    assert cfg.name == "demo"  # strings stay strings where a field is one
    saved = tmp_path / "config.json"
    load_config("demo").save(saved)
    assert load_config(saved) == load_config("demo")
    cfg_file.write_text("preset: demo\nstudent:\n  optim:\n    lr: fast\n")
    with pytest.raises(ValueError, match=r"c\.yaml: config\.student\.optim\.lr: expected a number"):
        load_config(cfg_file)


def _local(model_id: str, tmp_path) -> str:
    """The preset's model if it loads offline (embedded:*), else a tiny one of its family."""
    if model_id.startswith("embedded:"):
        return model_id
    if "hubert" in model_id:
        return str(tiny_hubert_folder(tmp_path / "hubert", layers=2))
    assert "bert" in model_id, f"no offline stand-in for {model_id!r}"
    return str(tiny_bert_folder(tmp_path / "bert", ["the", "cat"]))


@pytest.mark.parametrize("name", preset_names())
def test_preset_builds_teachers_and_student(name, tmp_path):
    cfg = load_config(name)
    torch.manual_seed(0)
    ling = cfg.linguistic
    t_l = LinguisticTeacher.from_encoder(
        _local(ling.model, tmp_path), LABELS, ling.pooling, ling.dropout, ling.max_length
    )
    enc = t_l.encode(["the cat", "the"], "cpu")
    logits_l, e_l = t_l(**enc)
    assert logits_l.shape == (2, 4) and e_l.shape == (2, t_l.embedding_dim)

    t_p = ProsodicResNet(ProsodicNetConfig.from_prosodic_config(cfg.prosodic, LABELS)).eval()
    logits_p, e_p = t_p(torch.randn(2, 120, 25), torch.tensor([120, 80]))
    assert logits_p.shape == (2, 4) and e_p.shape == (2, cfg.prosodic.embedding_dim)

    student_cfg = cfg.student
    student_cfg.encoder = _local(student_cfg.encoder, tmp_path)
    student = build_student(student_cfg, 4, t_l.embedding_dim, cfg.prosodic.embedding_dim).eval()
    with torch.no_grad():
        out = student(torch.randn(2, 16000) * 0.1, torch.tensor([16000, 12000]))
    assert out.logits.shape == (2, 4)
    assert out.emb_linguistic.shape == e_l.shape and out.emb_prosodic.shape == e_p.shape
    trainable = sum(p.numel() for p in student.encoder.parameters() if p.requires_grad)
    if student_cfg.trainable_layers == 0:
        assert trainable == 0  # the demo's frozen encoder
    else:
        assert trainable > 0

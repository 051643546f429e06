"""Every ``>>>`` example in src/ runs (as a doctest), so the documented calls stay true.

The examples that need a trained model run against a tiny random student saved at
``runs/demo/model`` in a temporary working folder, whose classifier is biased to ``happy`` so
the printed labels are what the examples show; ``clip.wav`` and ``pcm_bytes`` are 4 s of audio.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MODULES = sorted(
    ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
    for p in SRC.rglob("*.py")
    if ">>>" in p.read_text()
)


@pytest.fixture(scope="module")
def example_globs(tmp_path_factory):
    """``model`` (an EmoDistill) and ``pcm_bytes``, with runs/demo/model and clip.wav in cwd."""
    import torch
    from factories import tiny_whisper_encoder

    from emodistill.audio import write_wav
    from emodistill.inference.model import EmoDistill
    from emodistill.models.student import EmoDistillStudent
    from emodistill.models.student_folder import save_student

    root = tmp_path_factory.mktemp("examples")
    student = EmoDistillStudent(tiny_whisper_encoder(layers=1), 2, 8, 8, 16, 16)
    with torch.no_grad():
        student.classifier[-1].bias.copy_(torch.tensor([50.0, -50.0]))
    save_student(student, root / "runs" / "demo" / "model", ["happy", "sad"])
    t = np.arange(4 * 16000) / 16000
    signal = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    write_wav(root / "clip.wav", signal)
    pcm = (signal * 32767).astype("<i2").tobytes()
    model = EmoDistill.from_pretrained(root / "runs" / "demo" / "model")
    return root, {"model": model, "pcm_bytes": pcm}


def test_examples_exist():
    assert len(MODULES) >= 8


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name, example_globs, monkeypatch):
    root, extra = example_globs
    monkeypatch.chdir(root)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, globs={**vars(module), **extra}) if t.examples]
    assert tests, f"{name}: no examples found"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"

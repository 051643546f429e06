"""eGeMAPS LLD extraction and its content-and-settings-keyed cache (tiny synthetic wavs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emodistill.audio import write_wav
from emodistill.corpora.manifest import Utterance, write_manifest
from emodistill.features import (
    FRAME_RATE,
    N_LLD,
    FeatureSettings,
    default_cache_dir,
    egemaps_llds,
    extract_features,
)
from emodistill.features import extract as F

SR = 16000


def _voice(seconds: float, seed: int) -> np.ndarray:
    """A vowel-like chirp (harmonics over a sweeping F0) plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 60 * seed % 80 + 40 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (0.2 * x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _utt(path: Path, uid: str, speaker: str = "s1") -> Utterance:
    return Utterance(id=uid, path=path, label="neutral", speaker=speaker)


@pytest.fixture
def good(tmp_path: Path) -> list[Utterance]:
    """Three good wavs of 0.5, 0.75 and 1.0 s."""
    utts = []
    for i, seconds in enumerate((0.5, 0.75, 1.0)):
        p = tmp_path / "wav" / f"g{i}.wav"
        write_wav(p, _voice(seconds, i))
        utts.append(_utt(p, f"g{i}", speaker=f"s{i % 2}"))
    return utts


def _age(paths, seconds: float = 60.0) -> None:
    """Backdate files so the hash index trusts them (see RACY_SECONDS)."""
    past = time.time() - seconds
    for p in paths:
        os.utime(p, (past, past))


def test_shape_frame_rate_and_memmap(good, tmp_path):
    store = extract_features(good, tmp_path / "cache", progress=False)
    assert store.ids == ["g0", "g1", "g2"] and len(store) == 3 and not store.errors
    for u in good:
        n = sf.info(str(u.path)).frames
        x = store[u.id]
        assert isinstance(x, np.memmap) and x.dtype == np.float32
        assert x.shape == (n // 160 - 4, N_LLD) == (store.lengths[u.id], 25)
        assert abs(x.shape[0] - n / SR * FRAME_RATE) <= 5
        assert np.all(np.isfinite(x))
        # The cache holds exactly what the pure function gives for the same signal.
        signal_, sr = sf.read(str(u.path), dtype="float32")
        np.testing.assert_array_equal(np.asarray(x), egemaps_llds(signal_, sr))
    assert "g0" in store and "nope" not in store
    with pytest.raises(KeyError, match="nope"):
        store["nope"]


def test_any_input_rate_is_resampled_to_16k():
    x = _voice(1.0, 3)
    at_8k = egemaps_llds(x[::2], 8000)
    assert at_8k.shape == (96, N_LLD) and at_8k.dtype == np.float32


def test_second_run_extracts_nothing_and_key_is_content_based(good, tmp_path):
    cache = tmp_path / "cache"
    _age(u.path for u in good)
    first = extract_features(good, cache, progress=False)
    assert first.stats["extracted"] == 3 and first.stats["cached"] == 0
    assert first.stats["hashed"] == 3

    second = extract_features(good, cache, progress=False)
    assert second.stats["extracted"] == 0 and second.stats["cached"] == 3
    assert second.stats["hashed"] == 0  # the (path, size, mtime) index skipped re-hashing
    for u in good:
        assert second.path(u.id) == first.path(u.id)

    # Same bytes under another path and id: re-hashed, but still a cache hit.
    copy = tmp_path / "elsewhere" / "copy.wav"
    copy.parent.mkdir()
    copy.write_bytes(good[0].path.read_bytes())
    third = extract_features([*good, _utt(copy, "copy")], cache, progress=False)
    assert third.stats["extracted"] == 0 and third.stats["hashed"] == 1
    np.testing.assert_array_equal(third["copy"], third["g0"])

    # New content at the same path, same size: the key changes, so it is extracted again.
    write_wav(good[1].path, _voice(0.75, 7))
    fourth = extract_features(good, cache, progress=False)
    assert fourth.stats["extracted"] == 1 and fourth.stats["cached"] == 2
    assert not np.array_equal(np.asarray(fourth["g1"]), np.asarray(first["g1"]))


def test_changed_setting_misses_the_cache(good, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    base = extract_features(good, cache, progress=False)
    for changed in (
        FeatureSettings(code_version=F.FEATURE_CODE_VERSION + 1),
        FeatureSettings(opensmile_version="0.0.0"),
        FeatureSettings(sample_rate=8000),
        FeatureSettings(feature_set="GeMAPSv01b"),
    ):
        store = extract_features(good, cache, progress=False, settings=changed)
        assert store.stats["extracted"] == 3 and store.stats["cached"] == 0, changed
        assert store.path("g0") != base.path("g0")
    again = extract_features(good, cache, progress=False)
    assert again.stats["extracted"] == 0 and again.stats["cached"] == 3
    assert FeatureSettings(sample_rate=8000)  # frozen, hashable: usable as a dict key
    with pytest.raises(AttributeError):
        FeatureSettings().sample_rate = 1  # type: ignore[misc]


def test_leftover_tmp_and_truncated_entry_are_not_used(good, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = extract_features(good, cache, progress=False)
    entry = first.path("g2")
    ref = np.array(first["g2"])

    # A kill during np.save: the entry never appears, only a tmp file (removed in `finally`
    # here; a real SIGKILL leaves it, see the next test).
    entry.unlink()
    real_save = np.save

    def dying_save(f, arr, **kw):
        real_save(f, arr, **kw)
        f.truncate(100)
        raise KeyboardInterrupt  # BaseException: like a signal, not caught per file

    monkeypatch.setattr(F.np, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        extract_features(good, cache, progress=False)
    monkeypatch.undo()
    assert not entry.exists()
    # Stray partial tmp files beside the entry are never read; old ones are swept.
    young = entry.parent / f".{entry.name}.999.1.tmp"
    old = entry.parent / f".{entry.name}.999.2.tmp"
    for tmp in (young, old):
        tmp.write_bytes(entry.name.encode() * 10)
    _age([old], F.STALE_TMP_SECONDS + 60)

    store = extract_features(good, cache, progress=False)
    assert store.stats["extracted"] == 1 and store.stats["cached"] == 2
    np.testing.assert_array_equal(store["g2"], ref)
    assert young.exists() and not old.exists()

    # A truncated entry in place (disk full, foreign writer) is detected and re-extracted.
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])
    store = extract_features(good, cache, progress=False)
    assert store.stats["extracted"] == 1
    np.testing.assert_array_equal(store["g2"], ref)
    entry.write_bytes(b"")
    assert extract_features(good, cache, progress=False).stats["extracted"] == 1


def test_sigkill_mid_run_leaves_no_corrupt_entry(good, tmp_path):
    """A real SIGKILL while the second entry is half written: the rerun is complete and exact."""
    cache = tmp_path / "cache"
    manifest = tmp_path / "m.csv"
    write_manifest(good, manifest)
    marker = tmp_path / "half-written"
    script = textwrap.dedent(
        f"""
        import time, numpy as np
        from emodistill.features import extract as F
        calls = []
        real_save = np.save
        def slow_save(f, arr, **kw):
            calls.append(1)
            if len(calls) == 2:  # second entry: write half of it, then hang until killed
                real_save(f, arr, **kw)
                f.truncate(f.tell() // 2)
                f.flush()
                open({str(marker)!r}, "w").close()
                time.sleep(60)
            real_save(f, arr, **kw)
        F.np.save = slow_save
        F.extract_features({str(manifest)!r}, {str(cache)!r}, progress=False)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 30
        while not marker.exists() and time.time() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "child never reached the second write"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert len(list(cache.glob("*/.*.tmp"))) == 1  # the half-written file, under a tmp name
    entries = list(cache.glob("*/*.npy"))
    assert len(entries) == 1  # only the completed first entry
    assert F._entry_frames(entries[0]) is not None

    store = extract_features(good, cache, progress=False)
    assert store.stats["extracted"] == 2 and store.stats["cached"] == 1 and not store.errors
    fresh = extract_features(good, tmp_path / "fresh", progress=False)
    for u in good:
        np.testing.assert_array_equal(store[u.id], fresh[u.id])


def _bad_files(tmp_path: Path) -> list[Utterance]:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" * 4)
    (bad / "empty.wav").write_bytes(b"")
    write_wav(bad / "tiny.wav", _voice(0.01, 1))  # 10 ms
    nan = _voice(0.5, 2)
    nan[100:200] = np.nan
    sf.write(str(bad / "nan.wav"), nan, SR, subtype="FLOAT")
    names = ("corrupt", "empty", "tiny", "nan")
    return [_utt(bad / f"{n}.wav", f"bad_{n}", speaker="s9") for n in names]


def test_bad_files_are_reported_by_name_and_the_rest_extracted(good, tmp_path, caplog):
    bad = _bad_files(tmp_path)
    bad.append(_utt(tmp_path / "bad" / "missing.wav", "bad_missing"))
    store = extract_features([bad[0], *good, *bad[1:]], tmp_path / "cache", progress=False)
    assert store.ids == ["g0", "g1", "g2"]
    assert set(store.errors) == {u.id for u in bad}
    assert store.stats["extracted"] == 3 and store.stats["failed"] == 5
    for u in bad:
        assert u.path.name in store.errors[u.id]
        with pytest.raises(KeyError, match=u.path.name):
            store[u.id]
    assert "empty" in store.errors["bad_empty"]
    assert "too short" in store.errors["bad_tiny"]
    assert "non-finite" in store.errors["bad_nan"]
    assert "No such file" in store.errors["bad_missing"]
    err = caplog.text  # the library's logger (the CLI shows it on stderr)
    assert "warning" in err and all(u.id in err and u.path.name in err for u in bad)


def test_two_workers_match_one(good, tmp_path):
    bad = _bad_files(tmp_path)[:2]
    one = extract_features([*good, *bad], tmp_path / "c1", workers=1, progress=False)
    two = extract_features([*good, *bad], tmp_path / "c2", workers=2, progress=False)
    assert two.ids == one.ids and two.errors == one.errors and two.lengths == one.lengths
    assert two.stats["extracted"] == 3
    for uid in one.ids:
        np.testing.assert_array_equal(one[uid], two[uid])


def test_duplicate_content_is_extracted_once(good, tmp_path):
    twin = _utt(good[0].path, "twin")
    store = extract_features([*good, twin], tmp_path / "cache", progress=False)
    assert store.stats["extracted"] == 3 and store.path("twin") == store.path("g0")


def test_normalization_stats(good, tmp_path):
    store = extract_features(good, tmp_path / "cache", progress=False)
    ids = ["g0", "g2"]
    frames = np.concatenate([np.asarray(store[i], dtype=np.float64) for i in ids])
    mean, std = store.normalization_stats(ids)
    assert mean.shape == std.shape == (N_LLD,) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, frames.mean(0), rtol=1e-5, atol=1e-5)
    expect = frames.std(0)
    expect[expect < 1e-8] = 1.0
    np.testing.assert_allclose(std, expect, rtol=1e-4, atol=1e-4)
    assert np.all(std > 0)
    with pytest.raises(KeyError):
        store.normalization_stats(["g0", "missing"])
    with pytest.raises(ValueError):
        store.normalization_stats([])


def test_default_cache_dir(tmp_path):
    assert default_cache_dir(tmp_path / "corpus" / "manifest.csv") == (
        tmp_path / "corpus" / ".emodistill-cache" / "egemaps"
    )


def test_cli_features(good, tmp_path):
    from typer.testing import CliRunner

    from emodistill.cli.app import app

    manifest = tmp_path / "manifest.csv"
    write_manifest(good, manifest)
    runner = CliRunner()
    ok = runner.invoke(app, ["features", str(manifest)])
    assert ok.exit_code == 0, ok.output
    assert len(list(default_cache_dir(manifest).glob("*/*.npy"))) == 3
    assert "3 of 3" in ok.output

    bad_manifest = tmp_path / "with_bad.csv"
    write_manifest([*good, *_bad_files(tmp_path)[:3]], bad_manifest)
    res = runner.invoke(app, ["features", str(bad_manifest), "--workers", "1"])
    assert res.exit_code == 1, res.output
    flat = res.output.replace("\n", "")
    for name in ("bad_corrupt", "bad_empty", "bad_tiny", "corrupt.wav", "empty.wav", "tiny.wav"):
        assert name in flat
    assert "3 of 6" in flat


def test_disk_full_stops_the_job_instead_of_counting_bad_audio(good, tmp_path, monkeypatch):
    import errno

    from emodistill.util.files import EnvironmentFault

    calls = []

    def full_disk(path, array):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return save_npy_atomic(path, array)

    save_npy_atomic = F.save_npy_atomic
    monkeypatch.setattr(F, "save_npy_atomic", full_disk)
    with pytest.raises(EnvironmentFault, match="No space left on device") as err:
        extract_features(good, tmp_path / "cache", progress=False)
    assert "machine failed, not the file" in str(err.value) and len(calls) == 2
    monkeypatch.setattr(F, "save_npy_atomic", save_npy_atomic)
    again = extract_features(good, tmp_path / "cache", progress=False)
    assert again.ids == ["g0", "g1", "g2"] and not again.errors  # first entry kept, rest done
    assert again.stats["cached"] == 1 and again.stats["extracted"] == 2


def test_55_ms_clip_is_one_counted_error(good, tmp_path):
    # 55 ms passes the audio minimum (50 ms, so predict takes it) but not the feature minimum
    # (60 ms): it is listed with the reason and the other files are extracted.
    from emodistill.audio import MIN_SECONDS as AUDIO_MIN
    from emodistill.audio import load_audio

    clip = tmp_path / "short55.wav"
    write_wav(clip, _voice(0.055, 5))
    assert AUDIO_MIN < 0.055 < F.MIN_SECONDS and load_audio(clip).size == 880
    store = extract_features([*good, _utt(clip, "s55")], tmp_path / "cache", progress=False)
    assert store.ids == ["g0", "g1", "g2"] and list(store.errors) == ["s55"]
    assert "too short (55 ms < 60 ms)" in store.errors["s55"]
    assert store.stats["failed"] == 1


def test_entry_lock_makes_a_waiting_process_reuse_the_entry(good, tmp_path):
    import threading

    cache = tmp_path / "cache"
    first = extract_features(good[:1], cache, progress=False)
    entry = first.path("g0")
    done = entry.read_bytes()
    entry.unlink()
    result = {}
    lock = F._entry_lock(cache, entry.stem)
    with lock:  # "another process" is extracting g0
        worker = threading.Thread(
            target=lambda: result.update(
                r=F._extract_one(str(good[0].path), str(entry), F.FeatureSettings())
            )
        )
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive() and not entry.exists()  # waits instead of extracting twice
        entry.write_bytes(done)  # the other process finishes
    worker.join(10)
    assert result["r"] == (first.lengths["g0"], 0.0, None)  # reused: 0 s of audio extracted
    assert len(list((cache / F.LOCK_DIR).glob("*.lock"))) <= 256

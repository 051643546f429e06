"""audio.py: any rate/channels to 16 kHz mono float32; every bad file named in its AudioError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emodistill.audio import (
    SAMPLE_RATE,
    AudioError,
    load_audio,
    prepare_signal,
    stream_audio,
    write_wav,
)


def _sine(sr: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("sr,channels", [(8000, 8), (96000, 2), (44100, 1), (16000, 1)])
def test_any_rate_and_channels_to_16k_mono(tmp_path: Path, sr: int, channels: int) -> None:
    x = _sine(sr, 0.5)
    # channels differ by a constant offset whose mean is 0, so the mono mix is the sine itself
    offsets = np.linspace(-0.2, 0.2, channels, dtype=np.float32) if channels > 1 else [0.0]
    multi = np.stack([x + o for o in offsets], axis=1)
    path = tmp_path / f"a_{sr}_{channels}.wav"
    sf.write(path, multi, sr, subtype="FLOAT")
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == SAMPLE_RATE // 2
    ref = _sine(SAMPLE_RATE, 0.5)
    # away from the edges (resampler filter warm-up), the 16 kHz sine is reproduced
    assert np.abs(y[200:-200] - ref[200:-200]).max() < 1e-2


def test_int16_file_and_arrays(tmp_path: Path) -> None:
    x = (_sine(16000, 0.2) * 32767).astype(np.int16)
    x[0], x[1] = -32768, 32767
    path = tmp_path / "int16.wav"
    sf.write(path, x, 16000, subtype="PCM_16")
    from_file = load_audio(path)
    from_array = prepare_signal(x, 16000)
    assert from_file[0] == -1.0 and from_array[0] == -1.0
    np.testing.assert_allclose(from_file, from_array, atol=1e-7)
    u8 = np.array([0, 128, 255] * 400, dtype=np.uint8)  # unsigned PCM is centred on 128
    y = prepare_signal(u8, 16000)
    assert y[1] == 0.0 and y[0] == -1.0 and abs(y[2] - 127 / 128) < 1e-7


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    sf.write(good, _sine(16000, 1.0), 16000, subtype="PCM_16")
    data = good.read_bytes()
    cases = {
        "empty.wav": (b"", "empty"),
        "header_only.wav": (data[:44], None),  # no samples at all
        "truncated.wav": (data[: 44 + 8000], "truncated"),  # header claims 32000 bytes
        "text.wav": (b"id,path,label\nnot audio at all\n", "not a readable audio file"),
    }
    for name, (content, reason) in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(AudioError) as err:
            load_audio(p)
        assert str(p) in str(err.value)
        if reason:
            assert reason in str(err.value)
    nan = tmp_path / "nan.wav"
    x = _sine(16000, 0.5)
    x[100:103] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="3 non-finite"):
        load_audio(nan)
    with pytest.raises(AudioError, match="non-finite") as err:
        list(stream_audio(nan, 0.1))
    assert str(nan) in str(err.value)
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav")


def test_too_short(tmp_path: Path) -> None:
    clip = tmp_path / "10ms.wav"
    sf.write(clip, _sine(48000, 0.01), 48000, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"too short \(10 ms < 50 ms\)") as err:
        load_audio(clip)
    assert str(clip) in str(err.value)
    assert len(load_audio(clip, min_seconds=0.005)) == 160  # valid when allowed
    with pytest.raises(AudioError, match="<array>: audio is empty"):
        prepare_signal(np.zeros(0, np.float32), 16000)


@pytest.mark.parametrize("sr", [16000, 44100, 8000])
def test_stream_matches_load(tmp_path: Path, sr: int) -> None:
    rng = np.random.default_rng(sr)
    x = rng.uniform(-0.5, 0.5, (int(sr * 2.37), 2)).astype(np.float32)
    path = tmp_path / f"long_{sr}.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    whole = load_audio(path)
    blocks = list(stream_audio(path, 0.25))
    assert all(len(b) == 4000 for b in blocks[:-1]) and 0 < len(blocks[-1]) <= 4000
    streamed = np.concatenate(blocks)
    assert abs(len(streamed) - len(whole)) <= 1
    n = min(len(streamed), len(whole))
    np.testing.assert_allclose(streamed[:n], whole[:n], atol=1e-4)
    with pytest.raises(ValueError, match="block_seconds"):
        next(stream_audio(path, 0))


def test_write_wav_round_trip(tmp_path: Path) -> None:
    x = _sine(16000, 0.3)
    out = tmp_path / "sub" / "x.wav"
    write_wav(out, x)
    assert not list(out.parent.glob(".*tmp"))
    np.testing.assert_allclose(load_audio(out), x, atol=1 / 32768 + 1e-6)


def test_format_sniffed_from_bytes_not_name(tmp_path: Path) -> None:
    from emodistill.audio import UnsupportedFormatError, audio_info, sniff_format

    x = _sine(16000, 0.3)
    for fmt, ext in (("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg"), ("AIFF", "aiff")):
        p = tmp_path / f"clip.{ext}"
        sf.write(p, x, 16000, format=fmt)
        assert sniff_format(p.read_bytes()[:16]) == ("OGG" if fmt == "OGG" else fmt)
        wrong = tmp_path / f"clip_{ext}.au"  # a misleading name changes nothing
        wrong.write_bytes(p.read_bytes())
        assert len(load_audio(wrong)) == len(load_audio(p))
    au = tmp_path / "x.au"
    sf.write(au, x, 16000, format="AU")  # a real AU file: readable by libsndfile, not allowed
    for name in ("x.au", "x.vox", "x.raw"):
        junk = tmp_path / name
        junk.write_bytes(au.read_bytes() if name == "x.au" else bytes(range(256)) * 40)
        with pytest.raises(UnsupportedFormatError, match="WAV/RF64, FLAC") as err:
            audio_info(junk)
        assert str(junk) in str(err.value)


def test_header_limits_and_budget(tmp_path: Path) -> None:
    import io

    from emodistill.audio import AudioLimits, AudioTooLargeError, audio_info

    buf = io.BytesIO()
    sf.write(buf, np.zeros((48000, 4), np.float32), 48000, format="FLAC")  # 1 s x 48k x 4
    assert audio_info(buf, name="up.flac").channels == 4  # an open file works too
    with pytest.raises(AudioTooLargeError, match="up.flac: too much audio to decode"):
        audio_info(buf, AudioLimits(max_samples=100_000), name="up.flac")
    with pytest.raises(AudioTooLargeError, match="too long"):
        load_audio(buf, limits=AudioLimits(max_seconds=0.5), name="up.flac")
    low = tmp_path / "low.wav"
    sf.write(low, np.zeros(3000, np.float32), 3000)
    with pytest.raises(AudioError, match="3000 Hz is outside the accepted 4000-384000 Hz"):
        load_audio(low)
    # a block-decoded stereo 44.1 kHz file equals the one-shot conversion of its samples
    p = tmp_path / "st.wav"
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (200_000, 2)).astype(np.float32)
    sf.write(p, x, 44100, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(p), prepare_signal(x, 44100), atol=1e-6)

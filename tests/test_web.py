"""The web page end to end: the real service on loopback, driven in headless Chromium.

A tiny random student is saved with the real ``save_student``; ``create_app`` serves it with
uvicorn in a thread; Selenium drives Debian's chromium through its chromedriver (no browser
download). The page must show exactly what ``emodistill predict`` says for the same clip, and
the API's errors in words.

Skipped, with the reason, where chromium/chromedriver or selenium are missing (``make test``
installs the Debian packages). Set EMODISTILL_SCREENSHOT_DIR to keep the screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _find(*names: str) -> str | None:
    for name in names:
        if name and (found := shutil.which(name)):
            return found
    return None


CHROMIUM = _find(
    os.environ.get("EMODISTILL_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"
)
CHROMEDRIVER = _find(os.environ.get("EMODISTILL_CHROMEDRIVER", ""), "chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="web page test needs chromium and chromedriver "
    f"(found chromium={CHROMIUM}, chromedriver={CHROMEDRIVER}); "
    "`make test` installs the Debian packages chromium and chromium-driver",
)

LABELS = ["neutral", "happy", "angry", "sad"]
MAX_SECONDS = 8.0  # the server's duration limit: the long clip below exceeds it
WAIT = 20  # seconds for any one page state (the CPU is shared in CI)
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A fake microphone (a beeping tone) so the record button can be tested too.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--window-size=1100,1300",
)


# ------------------------------------------------------------------------------------ fixtures


def _tiny_model(folder: Path) -> Path:
    """A random 1-layer Whisper-encoder student, saved the way training saves one."""
    import torch

    from emodistill.models.encoders import WhisperSpeechEncoder, whisper_encoder_config
    from emodistill.models.student import EmoDistillStudent
    from emodistill.models.student_folder import save_student

    torch.manual_seed(0)
    config = whisper_encoder_config(
        d_model=16,
        encoder_layers=1,
        encoder_attention_heads=2,
        encoder_ffn_dim=32,
        num_mel_bins=80,
        max_source_positions=1500,
    )
    student = EmoDistillStudent(
        WhisperSpeechEncoder(config),
        num_labels=len(LABELS),
        d_linguistic=8,
        d_prosodic=8,
        projection_hidden=16,
        classifier_hidden=16,
    )
    # Random heads give near-uniform probabilities; scaling the last layer spreads them so
    # the bars (and the label) differ visibly between clips and windows.
    with torch.no_grad():
        last = [m for m in student.classifier.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(40.0)
    return save_student(student, folder, LABELS)


def _speechlike(seconds: float, sr: int, seed: int) -> np.ndarray:
    """(N, 2) float32: a gliding harmonic tone with syllable-rate bursts (not just a beep)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 60 * np.sin(2 * np.pi * 0.4 * t) + 30 * np.sin(2 * np.pi * 2.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 0.5 * (t % 2.5 < 2.0)
    mono = 0.2 * voice * envelope + 0.01 * rng.standard_normal(t.size)
    return np.stack([mono, 0.8 * mono], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    """Model folder, a 5 s stereo 22.05 kHz clip (resampled by the server), a too-long clip
    and a text file."""
    root = tmp_path_factory.mktemp("web")
    clip = root / "demo clip.wav"
    sf.write(clip, _speechlike(5.0, 22050, seed=1), 22050, subtype="PCM_16")
    long_clip = root / "long.wav"
    sf.write(long_clip, _speechlike(MAX_SECONDS + 2, 16000, seed=2), 16000, subtype="PCM_16")
    text = root / "notes.txt"
    text.write_text("This is not audio, just words about being happy.\n")
    return {
        "root": root,
        "model": _tiny_model(root / "model"),
        "clip": clip,
        "long": long_clip,
        "text": text,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(assets) -> str:
    """The real app on 127.0.0.1:<free port>, in a thread; yields its base URL."""
    yield from _serve(assets["model"])


def _serve(model: Path):
    import uvicorn

    from emodistill.service.app import create_app

    app = create_app(model, max_upload_mb=20, max_seconds=MAX_SECONDS)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


# ------------------------------------------------------------------------------------ helpers


def _open(driver, url: str) -> None:
    """Load the page fresh and wait until it has read /info."""
    driver.get(url + "/")
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.ID, "model-info").get_attribute("data-state") != "loading"
    )
    assert driver.find_element(By.ID, "model-info").get_attribute("data-state") == "ready"


def _text(driver, element_id: str) -> str:
    # textContent, not .text: the page capitalises labels with CSS.
    return driver.find_element(By.ID, element_id).get_attribute("textContent").strip()


def _wait_outcome(driver) -> str:
    """Wait until the page shows a result or an error; returns "result" or "error"."""

    def outcome(d):
        if d.find_element(By.ID, "error").is_displayed():
            return "error"
        if d.find_element(By.ID, "result").is_displayed() and _text(d, "result-label"):
            return "result"
        return False

    return WebDriverWait(driver, WAIT).until(outcome)


def _bars(driver) -> dict[str, float]:
    bars = driver.find_elements(By.CSS_SELECTOR, "#bars > *")
    return {b.get_attribute("data-label"): float(b.get_attribute("data-prob")) for b in bars}


def _screenshot(driver, path: Path, width: int = 1100) -> Path:
    """Full-page PNG at `path`, laid out `width` CSS px wide (an emulated viewport, so narrow
    widths are exact); also copied to $EMODISTILL_SCREENSHOT_DIR when set."""

    def emulate(height: int) -> None:
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)

    emulate(1000)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    emulate(height)  # the whole page in the viewport: no scrollbar, nothing cut off
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.write_bytes(base64.b64decode(shot["data"]))
    if out := os.environ.get("EMODISTILL_SCREENSHOT_DIR"):
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(out) / path.name)
    return path


def _cli_predict(model: Path, clip: Path) -> dict:
    """`emodistill predict MODEL CLIP --format json`, the reference the page must match."""
    from typer.testing import CliRunner

    from emodistill.cli.app import app

    result = CliRunner().invoke(app, ["predict", str(model), str(clip), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    if isinstance(data, dict) and "predictions" in data:
        data = data["predictions"]
    if isinstance(data, list):
        assert len(data) == 1, data
        data = data[0]
    return data


# ------------------------------------------------------------------------------------ tests


def test_page_states_audio_only_and_model(browser, server, assets):
    _open(browser, server)
    info = _text(browser, "model-info")
    # the folder's name, not the server's path (/info hides paths unless --info-paths)
    assert assets["model"].name in info and str(assets["model"].parent) not in info
    for label in LABELS:
        assert label in info
    assert "whisper" in info.lower()  # the backbone
    assert "Speaker adaptation" in info  # a plain model: no speaker profile controls
    assert not browser.find_element(By.ID, "speaker-section").is_displayed()
    body = browser.find_element(By.TAG_NAME, "body").text.lower()
    assert "only the audio is used" in body
    assert "no transcript" in body and "prosodic" in body
    # Offline: every stylesheet and script comes from this server.
    sources = browser.execute_script(
        "return [...document.querySelectorAll('script[src],link[href]')].map(e => e.src || e.href)"
    )
    assert sources and all(s.startswith(server) or s.startswith("data:") for s in sources), sources


@pytest.fixture(scope="module")
def expected(assets) -> dict:
    return _cli_predict(assets["model"], assets["clip"])


def _assert_matches_cli(driver, expected: dict) -> None:
    assert _text(driver, "result-label") == expected["label"]
    shown = _bars(driver)
    assert list(shown) == LABELS  # one bar per label, in the model's order
    for label, p in expected["probabilities"].items():
        assert shown[label] == pytest.approx(p, abs=1e-4), (label, shown, expected)
    assert sum(shown.values()) == pytest.approx(1.0, abs=1e-4)


def _runs(labels: list[str]) -> list[tuple[str, int]]:
    """Consecutive equal labels merged: the blocks the timeline should draw."""
    runs: list[tuple[str, int]] = []
    for label in labels:
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1] + 1)
        else:
            runs.append((label, 1))
    return runs


def test_upload_matches_cli_predict(browser, server, assets, expected):
    _open(browser, server)
    browser.find_element(By.ID, "file-input").send_keys(str(assets["clip"]))
    assert _wait_outcome(browser) == "result", _text(browser, "error")
    _assert_matches_cli(browser, expected)

    # 5 s with 3 s windows every 1.5 s: more than one window, so a timeline is drawn (by a
    # second request) whose blocks cover the clip and carry the API's window labels.
    WebDriverWait(browser, WAIT).until(lambda d: _text(d, "status").startswith("Done"))
    with assets["clip"].open("rb") as fh:
        api = httpx.post(
            f"{server}/predict",
            params={"segment": "true", "window": 3, "hop": 1.5},
            files={"file": ("clip.wav", fh, "audio/wav")},
            timeout=WAIT,
        ).json()
    assert len(api["segments"]) >= 2, api
    blocks = browser.find_elements(By.CSS_SELECTOR, "#timeline > li")
    assert browser.find_element(By.ID, "timeline").is_displayed()
    shown_runs = [
        (b.get_attribute("data-label"), int(b.get_attribute("data-windows"))) for b in blocks
    ]
    assert shown_runs == _runs([seg["label"] for seg in api["segments"]])
    assert float(blocks[0].get_attribute("data-start")) == pytest.approx(0.0, abs=1e-6)
    assert float(blocks[-1].get_attribute("data-end")) == pytest.approx(5.0, abs=0.05)
    assert not browser.find_element(By.ID, "error").is_displayed()

    for name, width in (("web-prediction.png", 1100), ("web-prediction-narrow.png", 400)):
        shot = _screenshot(browser, assets["root"] / name, width)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_drag_and_drop(browser, server, assets, expected):
    """A file dropped on the drop zone is analysed like a chosen one."""
    _open(browser, server)
    # Selenium cannot drag from the desktop: put the file in a helper input, then dispatch
    # the drag events a real drop produces, carrying that file.
    browser.execute_script(
        "const i = document.createElement('input'); i.type = 'file'; i.id = 'drop-source';"
        "document.body.append(i);"
    )
    browser.find_element(By.ID, "drop-source").send_keys(str(assets["clip"]))
    browser.execute_script(
        "const dt = new DataTransfer();"
        "dt.items.add(document.getElementById('drop-source').files[0]);"
        "const zone = document.getElementById('drop-zone');"
        "for (const type of ['dragenter', 'dragover', 'drop'])"
        "  zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true,"
        "                                          dataTransfer: dt}));"
    )
    assert _wait_outcome(browser) == "result", _text(browser, "error")
    _assert_matches_cli(browser, expected)
    assert "dragover" not in browser.find_element(By.ID, "drop-zone").get_attribute("class")


def test_text_file_shows_error(browser, server, assets):
    _open(browser, server)
    browser.find_element(By.ID, "file-input").send_keys(str(assets["text"]))
    assert _wait_outcome(browser) == "error"
    message = _text(browser, "error")
    # 415: the bytes are none of the supported formats (sniffed, whatever the extension)
    assert "notes.txt" in message and "not a supported audio format" in message, message
    assert "WAV/RF64, FLAC" in message
    assert not browser.find_element(By.ID, "result").is_displayed()
    _screenshot(browser, assets["root"] / "web-error.png")


def test_too_long_file_shows_error(browser, server, assets):
    _open(browser, server)
    browser.find_element(By.ID, "file-input").send_keys(str(assets["long"]))
    assert _wait_outcome(browser) == "error"
    message = _text(browser, "error")
    assert "long.wav" in message and "too long" in message.lower(), message


def test_microphone_recording_is_sent_as_wav(browser, server, assets):
    """Chromium's fake microphone: record ~1.5 s, stop, get a prediction for it."""
    _open(browser, server)
    button = browser.find_element(By.ID, "record-button")
    button.click()
    WebDriverWait(browser, WAIT).until(lambda d: button.get_attribute("aria-pressed") == "true")
    time.sleep(1.5)
    button.click()
    assert _wait_outcome(browser) == "result", _text(browser, "error")
    assert _text(browser, "result-label") in LABELS
    assert _text(browser, "result-file").startswith("From “recording-")
    assert sum(_bars(browser).values()) == pytest.approx(1.0, abs=1e-4)
    assert button.get_attribute("aria-pressed") == "false"
    # What was sent (the player plays the same blob): a 16 kHz mono 16-bit WAV of ~1.5 s.
    header = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(document.getElementById('player').src).then(r => r.arrayBuffer()).then(b => {"
        "  const v = new DataView(b);"
        "  done([String.fromCharCode(...new Uint8Array(b, 0, 4)), v.getUint16(22, true),"
        "        v.getUint32(24, true), v.getUint16(34, true), v.getUint32(40, true)]);"
        "});"
    )
    riff, channels, rate, bits, data_bytes = header
    assert (riff, channels, rate, bits) == ("RIFF", 1, 16000, 16)
    assert 1.0 < data_bytes / 2 / rate < 5.0, header


def test_microphone_timeline_is_drawn_live_over_the_websocket(browser, server, assets):
    """While recording, /stream events draw the timeline; after Stop the upload's answer rules."""
    _open(browser, server)
    button = browser.find_element(By.ID, "record-button")
    button.click()
    WebDriverWait(browser, WAIT).until(lambda d: button.get_attribute("aria-pressed") == "true")

    def live_blocks(d):
        section = d.find_element(By.ID, "timeline-section")
        blocks = d.find_elements(By.CSS_SELECTOR, "#timeline > li")
        return blocks if section.get_attribute("data-live") == "true" and blocks else False

    # The first 3 s window completes 3 s into the recording; it must show before Stop.
    blocks = WebDriverWait(browser, WAIT).until(live_blocks)
    assert button.get_attribute("aria-pressed") == "true"  # still recording
    assert blocks[0].get_attribute("data-label") in LABELS
    assert float(blocks[0].get_attribute("data-start")) == 0.0
    assert _text(browser, "result-file").startswith("Live: window")
    assert sum(_bars(browser).values()) == pytest.approx(1.0, abs=1e-4)
    button.click()
    WebDriverWait(browser, WAIT).until(
        lambda d: _text(d, "result-file").startswith("From “recording-")
    )
    assert browser.find_element(By.ID, "timeline-section").get_attribute("data-live") == "false"


# ------------------------------------------------------------------------------- speaker profile


@pytest.fixture(scope="module")
def speaker_assets(assets):
    """A tiny student.speaker_norm model, its server, and a speaker profile of it (#28)."""
    from test_serve_speaker import _clips, _speaker_model

    from emodistill.inference.model import EmoDistill

    folder = _speaker_model(assets["root"] / "speaker-model")
    model = EmoDistill.from_pretrained(folder)
    profile = model.enroll(_clips(4, first=1.1, f0=330.0), sampling_rate=16000)
    path = assets["root"] / "alice.json"
    path.write_text(json.dumps(profile.to_dict()))
    servers = _serve(folder)
    yield {"model": model, "profile": profile, "path": path, "url": next(servers)}
    next(servers, None)


def test_speaker_profile_is_sent_and_shown(browser, assets, speaker_assets):
    _open(browser, speaker_assets["url"])
    assert browser.find_element(By.ID, "speaker-section").is_displayed()
    assert _text(browser, "profile-status") == "speaker profile: none"
    assert browser.find_element(By.ID, "live-speaker-norm").is_displayed()
    browser.find_element(By.ID, "profile-input").send_keys(str(speaker_assets["path"]))
    WebDriverWait(browser, WAIT).until(lambda d: "alice.json" in _text(d, "profile-status"))
    browser.find_element(By.ID, "file-input").send_keys(str(assets["clip"]))
    assert _wait_outcome(browser) == "result", _text(browser, "error")
    want = speaker_assets["model"].predict(assets["clip"], profile=speaker_assets["profile"])
    for label, p in want.probabilities.items():
        assert _bars(browser)[label] == pytest.approx(p, abs=1e-4)
    seconds = speaker_assets["profile"].stats.seconds
    assert _text(browser, "profile-status") == (
        f"speaker profile: alice.json (4 clips, {seconds:.1f} s)"
    )
    # a file that is no profile: the server's words, not a silent global prediction
    browser.find_element(By.ID, "profile-input").send_keys(str(assets["text"]))
    browser.find_element(By.ID, "file-input").send_keys(str(assets["clip"]))
    WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    message = _text(browser, "error")
    assert "speaker profile was refused" in message and "notes.txt: not JSON" in message, message

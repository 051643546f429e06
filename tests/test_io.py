"""util.files: the one atomic writer (normal permissions, unique names) and the stale-temp sweep."""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor

from emodistill.util import files as report
from emodistill.util.files import sweep_stale_tmp, tmp_path_for, write_text_atomic


def test_report_writers_use_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        report.write_json_atomic(tmp_path / "results.json", {"ua": float("nan")})
        report.write_text_atomic(tmp_path / "report.md", "# r\n")
    finally:
        os.umask(old)
    for name in ("results.json", "report.md"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644  # not mkstemp's 0600
    assert report.read_json(tmp_path / "results.json") == {"ua": None}
    assert not list(tmp_path.glob(".*tmp"))


def test_temp_names_unique_across_threads(tmp_path):
    target = tmp_path / "x.json"
    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(lambda _: tmp_path_for(target), range(2000)))
    assert len(set(names)) == 2000
    with ThreadPoolExecutor(8) as pool:  # concurrent writers of one file: one complete winner
        list(pool.map(lambda i: write_text_atomic(target, f"{i}\n" * 100), range(64)))
    lines = target.read_text().splitlines()
    assert len(lines) == 100 and len(set(lines)) == 1


def test_sweep_removes_only_old_temp_files(tmp_path):
    old, new = tmp_path / "a" / ".x.1.tmp", tmp_path / ".y.2.tmp"
    old.parent.mkdir()
    for p in (old, new):
        p.write_text("partial")
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert sweep_stale_tmp(tmp_path) == 1
    assert not old.exists() and new.exists()


def test_model_config_goes_through_the_one_json_text():
    """A model folder's config: NaN as null like every JSON file, bytes as before otherwise."""
    import json

    from emodistill.models.folder import config_text

    config = {"labels": ["happy", "sad"], "val_ua": float("nan"), "name": "é"}
    text = config_text(config)
    assert json.loads(text)["val_ua"] is None and "NaN" not in text
    plain = {"labels": ["happy"], "d": 256, "name": "é"}
    assert config_text(plain) == json.dumps(plain, indent=2) + "\n"  # the earlier bytes

"""``emodistill enroll``: a speaker profile for a ``student.speaker_norm`` model (docs/speaker.md),
merged into the main app by ``cli/app.py``."""

from __future__ import annotations

from pathlib import Path

import typer

from emodistill.cli.common import console, fail, known_errors
from emodistill.models.folder import CONFIG_NAME, WEIGHTS_NAME
from emodistill.models.speaker_stats import MIN_ENROL_SECONDS

enroll_app = typer.Typer()


@enroll_app.command("enroll")
@known_errors
def enroll_cmd(
    model: Path = typer.Argument(..., help=f"Model folder ({CONFIG_NAME} + {WEIGHTS_NAME})."),
    clips: list[str] = typer.Argument(..., help="Clips of one speaker: files, folders or globs."),
    out: Path = typer.Option(..., "--out", "-o", help="Speaker profile to write (JSON)."),
    min_seconds: float = typer.Option(
        MIN_ENROL_SECONDS, "--min-seconds", help="Least audio a profile is made of, seconds."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Enrol a speaker: clip-mean statistics of their clips, for `predict --profile`."""
    from emodistill.cli.predict import expand_inputs
    from emodistill.inference.model import EmoDistill
    from emodistill.inference.speaker import enroll, require_speaker_norm
    from emodistill.models.folder import ModelLoadError
    from emodistill.models.speaker_stats import write_profile

    try:
        m = EmoDistill.from_pretrained(model, device=device)
    except (ModelLoadError, OSError) as err:
        fail(f"cannot load model: {err}")
    require_speaker_norm(m, "enroll")
    rows = expand_inputs(clips)
    missing = [error for _, path, error in rows if path is None]
    for reason in missing:
        console.print(f"skipped: {reason}", markup=False, highlight=False, soft_wrap=True)
    paths = [path for _, path, _ in rows if path is not None]
    if not paths:
        fail(f"no enrolment clips found ({'; '.join(missing)}); give audio files of the speaker")
    result = enroll(m, paths, min_seconds=min_seconds)
    for name, reason in result.failed:
        console.print(f"skipped {name}: {reason}", markup=False, highlight=False, soft_wrap=True)
    write_profile(result.profile, out)
    stats = result.profile.stats
    skipped = len(result.failed) + len(missing)
    console.print(
        f"wrote {out}: {stats.n} clip mean(s) of {len(result.profile.sources)} clip(s), "
        f"{stats.seconds:.1f} s of audio" + (f"; {skipped} skipped" if skipped else ""),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )

"""Model cards: the ``README.md`` of a speech-only model folder (docs/inference.md).

The card's text (:func:`card_text`, from a dict of facts), its reader (:func:`card_summary`,
the one-line summary that ``predict`` and the web page show) and :func:`carry_model_card`
(``save_pretrained``). What a card says about a run (results, teachers, the paired comparison,
the corpus) is gathered by :func:`emodistill.evaluation.model_card.write_model_card`, the one
writer of a run's cards. The card opens with YAML front matter in the Hugging Face convention
(``library_name``, ``pipeline_tag``, ``license``, ``base_model``, ``metrics``, ``model-index``
with the cross-validation means as fractions). A folder without a card loads and predicts the
same.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from emodistill.config.variants import BASELINE, FULL, variant_title
from emodistill.models.assets import BASE_MODELS
from emodistill.models.folder import card_path, read_config
from emodistill.util.files import write_text_atomic
from emodistill.util.formatting import pct

#: Front-matter metric ids (Hugging Face ``evaluate`` names): WA is accuracy, UA the mean
#: per-class recall ("recall", macro).
CARD_METRICS = ("accuracy", "recall")


def write_card(folder: str | Path, facts: Mapping[str, Any]) -> Path:
    """Write ``folder/README.md`` from ``facts``; returns its path."""
    write_text_atomic(card_path(folder), card_text(facts))
    return card_path(folder)


def carry_model_card(source: str | Path | None, folder: str | Path) -> Path:
    """Give a model folder saved from another (``save_pretrained``) its card: a copy of
    ``source``'s card, or, when ``source`` has none (an older folder, a model built in memory),
    a card from ``folder``'s config alone."""
    src, dest = (None if source is None else card_path(source)), card_path(folder)
    if src is None or not src.is_file():
        return write_card(folder, folder_facts(Path(folder)))
    if src.resolve() != dest.resolve():
        write_text_atomic(dest, src.read_text(encoding="utf-8"))
    return dest


def card_summary(folder: str | Path) -> str | None:
    """The card's one-line summary (its first paragraph after the title), or None when the
    folder has no card (older folders) or the card has no such paragraph."""
    path = card_path(folder)
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    _, body = split_front_matter(text)
    lines = [line.strip() for line in body.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("# "):
            rest = lines[i + 1 :]
            start = next((k for k, x in enumerate(rest) if x), None)
            if start is None or rest[start].startswith("#"):
                return None
            end = next((k for k in range(start, len(rest)) if not rest[k]), len(rest))
            return " ".join(rest[start:end])
    return None


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(front matter as a dict, the markdown after it) of a card; ``{}`` when it has none."""
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---\n", 4)
    if end < 0:
        return {}, text
    return yaml.safe_load(text[4:end]) or {}, text[end + 5 :]


# --------------------------------------------------------------------------- facts


def folder_facts(folder: Path) -> dict[str, Any]:
    """What a card says from the folder's config alone (labels, encoder, configuration)."""
    config = read_config(folder)
    training = config.get("training_config") or {}
    variant = str(config.get("variant") or FULL)
    facts: dict[str, Any] = {
        "name": folder.name,
        "labels": list(config["labels"]),
        "encoder": _encoder_name(
            (training.get("student") or {}).get("encoder")
            or (config.get("encoder") or {}).get("source")
        ),
        "config_name": training.get("name"),
        "fold_scheme": (training.get("folds") or {}).get("scheme"),
        "variant": variant,
        "fold": config.get("fold"),
        "seed": config.get("seed"),
        "test_speakers": config.get("test_speakers") or [],
        "val_ua": config.get("val_ua"),
        "trained_on_validation": bool(config.get("trained_on_validation")),
    }
    return facts


def _encoder_name(encoder: str | None) -> str | None:
    """The encoder as a card names it: an id as given, a local folder by its last part only
    (a card is shown by ``/info``, which never reveals the server's paths)."""
    if (
        not encoder
        or encoder in BASE_MODELS
        or not (Path(encoder).is_absolute() or Path(encoder).exists())
    ):
        return encoder
    return Path(encoder).name


# --------------------------------------------------------------------------- text


def card_text(facts: Mapping[str, Any]) -> str:
    """The card (front matter + markdown) from a facts dict (:func:`folder_facts`, and the run's
    facts that :func:`emodistill.evaluation.model_card.write_model_card` adds)."""
    front = _front_matter(facts)
    body = [f"# {facts['name']}: speech emotion recognition (emodistill)", "", _summary(facts), ""]
    body += _data_section(facts)
    body += _evaluation_section(facts)
    body += _teachers_section(facts)
    body += _config_section(facts)
    body += _use_section(facts)
    text = "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n"
    return text + "\n".join(body).rstrip() + "\n"


def _base_model(encoder: str | None) -> tuple[str | None, str]:
    """(upstream hub id or None, license) of the student's encoder."""
    if encoder in BASE_MODELS:
        return BASE_MODELS[encoder]
    if encoder and encoder.count("/") == 1 and not Path(encoder).exists():
        return encoder, "other"  # a hub id we know nothing about: its own card says
    return None, "other"


def _front_matter(facts: Mapping[str, Any]) -> dict[str, Any]:
    base, license_ = _base_model(facts.get("encoder"))
    front: dict[str, Any] = {
        "library_name": "emodistill",
        "pipeline_tag": "audio-classification",
        "license": license_,
    }
    if base:
        front["base_model"] = base
    front["tags"] = ["speech-emotion-recognition", "knowledge-distillation", "emodistill"]
    if facts.get("synthetic"):
        front["tags"].append("synthetic-speech")
    front["metrics"] = list(CARD_METRICS)
    results = facts.get("results")
    if results:
        corpus = facts.get("corpus") or "unknown corpus"
        front["model-index"] = [
            {
                "name": facts["name"],
                "results": [
                    {
                        "task": {"type": "audio-classification", "name": "Emotion recognition"},
                        "dataset": {"name": corpus, "type": corpus},
                        "metrics": [
                            {
                                "type": "accuracy",
                                "value": results["mean"]["wa"],
                                "name": "WA, mean over speaker-independent folds",
                            },
                            {
                                "type": "recall",
                                "value": results["mean"]["ua"],
                                "name": "UA (macro recall), mean over speaker-independent folds",
                                "args": {"average": "macro"},
                            },
                        ],
                    }
                ],
            }
        ]
    return front


def _summary(facts: Mapping[str, Any]) -> str:
    labels = ", ".join(facts["labels"])
    variant = facts["variant"]
    if variant == BASELINE:
        how = "fine-tuned with cross-entropy only (no teachers)"
    elif variant == FULL:
        how = "distilled with EmoDistill from a linguistic and a prosodic teacher"
    else:
        how = f"EmoDistill variant `{variant}` ({variant_title(variant)})"
    encoder, (base, _) = facts["encoder"], _base_model(facts["encoder"])
    if base and base != encoder:  # an embedded copy: name the upstream model too
        encoder = f"{base} ({encoder})"
    parts = [f"Speech-only emotion recognition ({labels}), {how}; encoder {encoder}"]
    results = facts.get("results")
    if results:
        parts.append(
            f"test UA {pct(results['mean']['ua'])} ± {pct(results['std']['ua'])} % over "
            f"{len(results['folds'])} speaker-independent fold(s) of "
            f"{facts.get('corpus', 'its corpus')}"
        )
    else:
        parts.append("no evaluation results are recorded with this folder")
    text = "; ".join(parts) + "."
    if facts.get("synthetic"):
        text += " Trained on synthetic espeak-ng speech only: not for real voices."
    return text


def _data_section(facts: Mapping[str, Any]) -> list[str]:
    out = ["## Training data", ""]
    if facts.get("corpus"):
        out.append(
            f"Corpus manifest `{facts['corpus']}`: {facts['utterances']} utterances, "
            f"{facts['speakers']} speakers."
        )
    else:
        out.append("The corpus is not recorded with this folder.")
    if facts.get("synthetic"):
        out += [
            "",
            f"The corpus is **synthetic**: sentences rendered by the espeak-ng speech synthesiser "
            f"(its recipe is `{facts['recipe']}` beside the manifest), emotion carried by chosen "
            "words and by pitch, rate and loudness settings. No human voice was recorded.",
        ]
    out += ["", f"Labels (in output order): {', '.join(facts['labels'])}.", ""]
    return out


def _evaluation_section(facts: Mapping[str, Any]) -> list[str]:
    results = facts.get("results")
    if not results:
        return []
    out = [
        "## Evaluation",
        "",
        f"Speaker-independent cross-validation, fold scheme `{facts.get('fold_scheme')}` (each "
        "fold's test speakers are held out of its training and validation). WA = accuracy, "
        "UA = mean per-class recall, percent; fold values are means over seeds "
        f"{', '.join(str(s) for s in results.get('seeds', []))}.",
        "",
        "| fold | n | WA | UA |",
        "|---|---|---|---|",
    ]
    for f in results["folds"]:
        out.append(f"| {f['fold']} | {f['n']} | {pct(f['wa'])} | {pct(f['ua'])} |")
    out.append(
        f"| **mean ± std** | {sum(f['n'] for f in results['folds'])} | "
        f"{pct(results['mean']['wa'])} ± {pct(results['std']['wa'])} | "
        f"{pct(results['mean']['ua'])} ± {pct(results['std']['ua'])} |"
    )
    out.append("")
    own = [
        r
        for r in results.get("runs", [])
        if r["fold"] == facts.get("fold") and r["seed"] == facts.get("seed")
    ]
    if own:
        speakers = ", ".join(facts.get("test_speakers") or []) or "-"
        out += [
            f"These weights: fold {own[0]['fold']}, seed {own[0]['seed']} (test speakers "
            f"{speakers}): test WA {pct(own[0]['wa'])}, UA {pct(own[0]['ua'])}; validation UA "
            f"{pct(facts.get('val_ua'))}"
            + (" (its speakers were trained on)." if facts.get("trained_on_validation") else "."),
            "",
        ]
    cmp = facts.get("compare")
    if cmp:
        ua = cmp["ua"]
        low, high = ua["ci95"]
        out += [
            f"Paired against plain fine-tuning (`{BASELINE}`, same folds and seeds, "
            f"{cmp['n_pairs']} pairs): UA {100 * ua['mean_gain']:+.2f} points, 95 % CI "
            f"[{100 * low:+.2f}, {100 * high:+.2f}] (folds resampled), wins/ties/losses "
            f"{ua['wins']}/{ua['ties']}/{ua['losses']}: {facts['verdict']}.",
            "",
        ]
    out += _probe_lines(facts.get("probe"))
    return out


def _probe_lines(probe: Mapping[str, Any] | None) -> list[str]:
    """The linear probe on the same frozen features and folds (``RUN/probe/probe.json``)."""
    if not probe or not probe.get("folds"):
        return []
    ci = probe.get("ci95_best")
    span = f", 95 % CI [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci else ""
    return [
        f"Linear probe on the same frozen encoder features and folds (logistic regression on "
        f"mean-pooled layer {probe['best_layer']}, its best layer): UA "
        f"{pct(probe['probe_best'])}; this variant {pct(probe['student'])}, paired "
        f"{100 * probe['diff_best']:+.2f} points{span}: "
        f"{probe['verdict']}.",
        "",
    ]


def _teachers_section(facts: Mapping[str, Any]) -> list[str]:
    teachers = facts.get("teachers")
    if not teachers or not teachers.get("mean"):
        return []
    out = [
        "## Teachers",
        "",
        "Used in training only (the model hears audio alone). Test metrics, mean ± std over "
        f"{len(teachers.get('folds', {}))} fold(s), percent:",
        "",
        "| teacher | input | WA | UA |",
        "|---|---|---|---|",
    ]
    inputs = {"linguistic": "transcript text", "prosodic": "eGeMAPS prosodic descriptors"}
    for kind, mean in teachers["mean"].items():
        std = teachers["std"].get(kind, {})
        out.append(
            f"| {kind} | {inputs.get(kind, '-')} | {pct(mean.get('wa'))} ± {pct(std.get('wa'))} "
            f"| {pct(mean.get('ua'))} ± {pct(std.get('ua'))} |"
        )
    return [*out, ""]


def _config_section(facts: Mapping[str, Any]) -> list[str]:
    return [
        "## Configuration",
        "",
        f"Config `{facts.get('config_name') or '-'}`, variant `{facts['variant']}` "
        f"({variant_title(facts['variant'])}), encoder `{facts['encoder']}`. The full training "
        "config is `training_config` in this folder's config file.",
        "",
    ]


def _use_section(facts: Mapping[str, Any]) -> list[str]:
    out = [
        "## Intended use and limitations",
        "",
        "Classifies the emotion of short speech clips into the labels above, from the audio "
        "alone; `emodistill predict FOLDER clip.wav` or "
        '`EmoDistill.from_pretrained("FOLDER").predict(...)`. Research use.',
        "",
        "- Its numbers hold for speakers, microphones and speaking styles like its corpus's; "
        "other languages, acted vs natural speech, noise and children's voices are untested.",
        "- Emotion categories are a simplification; do not use the predictions for decisions "
        "about people (hiring, health, policing, credit).",
        "- The corpus's license terms apply to these weights as well as the base model's.",
    ]
    if facts.get("synthetic"):
        out.append(
            "- **Trained on synthetic espeak-ng speech only. Not for real voices**: it has "
            "never heard a human; its output on real speech means nothing."
        )
    return [*out, ""]

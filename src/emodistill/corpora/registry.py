"""Corpus name -> its :class:`~emodistill.corpora.base.CorpusSpec` (modules imported lazily)."""

from __future__ import annotations

from importlib import import_module

from emodistill.corpora.base import CorpusSpec

#: ``emodistill corpus NAME`` -> module under ``emodistill.corpora`` defining ``SPEC``.
CORPORA = {
    "emodb": "emodb",
    "ravdess": "ravdess",
    "crema-d": "cremad",
    "tess": "tess",
    "savee": "savee",
    "jl-corpus": "jlcorpus",
    "esd": "esd",
    "msp-podcast": "msppodcast",
    "meld": "meld",
}


def get_corpus(name: str) -> CorpusSpec:
    """The spec of corpus ``name``.

    Raises:
        KeyError: an unknown name (the message lists the known ones).
    """
    try:
        module = CORPORA[name]
    except KeyError:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}") from None
    return import_module(f"emodistill.corpora.{module}").SPEC

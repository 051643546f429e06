"""eGeMAPS features: extraction, the content-and-config-keyed cache, speaker
normalisation and the student's encoder prefix cache.

The public names of ``extract``, ``egemaps`` and ``cache`` are importable from here: the list is
``extract.__all__`` (one list, kept there)."""

from emodistill.features.extract import *  # noqa: F403
from emodistill.features.extract import __all__  # noqa: F401

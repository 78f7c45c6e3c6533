"""furiosa-registry 0.9.x descriptor: one function per entry of artifacts.yaml, made at import time.

furiosa-registry 0.9 imports this file (``list``/``load``/``help`` with ``file://``, ``https://github.com/...``
URIs); 0.5.x reads artifacts.yaml instead. Nothing is listed here: the functions come from the catalog
(furiosa/artifacts/registries/furiosa_registry.py). Keep every other name in this module a non-function
(the client inspects the return annotation of each function it finds).
"""

from pathlib import Path as _Path

from furiosa.artifacts.registries import furiosa_registry as _furiosa_registry

globals().update(_furiosa_registry.entry_points(_Path(__file__).resolve().parent, module=__name__))

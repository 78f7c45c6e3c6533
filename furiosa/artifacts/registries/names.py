"""Catalog names <-> DVC model-registry artifact names.

DVC (``dvc.yaml`` ``artifacts:``, ``dvc artifacts get``) and GTO want lowercase names with dashes
(:data:`DVC_NAME_PATTERN`); the catalog uses Python identifiers. One built binary is one DVC
artifact: the int8 binary (what a code entry loads by default) takes the bare name, the fp32 one
adds ``-fp32``::

    MLCommonsResNet50     -> mlcommons-resnet50, mlcommons-resnet50-fp32
    MLCommonsSSDResNet34  -> mlcommons-ssd-resnet34, mlcommons-ssd-resnet34-fp32
    EfficientNetV2_S      -> efficientnetv2-s, efficientnetv2-s-fp32
    DigitsConvNet         -> digits-convnet, digits-convnet-fp32

The mapping only lowercases and inserts dashes, so :func:`~furiosa.artifacts.catalog.entries.normalize_name`
of a DVC name equals that of its catalog name: ``find_entry(entries, "mlcommons-resnet50")`` already
finds ``MLCommonsResNet50``. The fp32 suffix is the one thing the loose lookup cannot undo, hence
:func:`catalog_name`.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional, Tuple

from furiosa.artifacts.errors import ModelNotFoundError
from furiosa.artifacts.layout import PRECISIONS

__all__ = [
    "DEFAULT_PRECISION", "DVC_NAME_PATTERN", "LOOSE_VERSION", "SEMVER", "catalog_name", "dvc_name", "semver", "words",
]

#: DVC's artifact name rule (lowercase letters, digits, dashes; ``/`` only inside).
DVC_NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-/]*[a-z0-9])?$")
#: The precision whose artifact takes the bare name (what ``load(name)`` returns by default).
DEFAULT_PRECISION = "int8"
#: GTO's version form: semver with a leading ``v`` (``v1.5.0``, ``v1.5.1-rc1``).
SEMVER = r"v(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)(?:[-+][0-9A-Za-z.+-]+)?"
#: A loose catalog version (``v1.5``, ``1.5``, ``v2``), padded to semver by :func:`semver`.
LOOSE_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$")

# A catalog name's words, tried in this order at each position:
#   a network name ending in "Net" with its version (ResNet50, MobileNet, ConvNet, EfficientNetV2),
#   an acronym right before one (SSD in SSDResNet34),
#   capitals then lowercase, a last capital before a non-letter, then digits and lowercase
#   (MLCommons, Digits, ViT in ViT_B16, YOLOv5s),
#   capitals and digits (S, INT8), digits.
# Underscores (and anything else unmatched) separate words. Like any rule on case it is a heuristic
# (BERTBase gives one word, as MLCommons must): what matters is that it is fixed, documented, and that
# no two catalog binaries get the same name (dvc_artifacts.expected_artifacts refuses that).
_WORD = re.compile(r"[A-Z][a-z]+Net(?:V?\d+)?|[A-Z]{2,}(?=[A-Z][a-z]+Net)"
                   r"|[A-Z]*[a-z]+(?:[A-Z](?![A-Za-z]))?(?:\d+[a-z]*)?|[A-Z]+\d*|\d+")


def words(name: str) -> list[str]:
    """The words of a catalog name, e.g. ``MLCommonsSSDResNet34`` -> ``[MLCommons, SSD, ResNet34]``."""
    return _WORD.findall(name)


def dvc_name(name: str, precision: str = DEFAULT_PRECISION) -> str:
    """The DVC artifact name of catalog model ``name``'s ``precision`` binary.

    Words (see the module docstring) are lowercased and joined with ``-``; any precision other
    than :data:`DEFAULT_PRECISION` is appended (``-fp32``).

    Raises:
        ValueError: unknown precision, or the result breaks :data:`DVC_NAME_PATTERN`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    parts = [w.lower() for w in words(name)]
    if precision != DEFAULT_PRECISION:
        parts.append(precision)
    result = "-".join(parts)
    if not DVC_NAME_PATTERN.match(result):
        raise ValueError(f"catalog name {name!r} gives the DVC artifact name {result!r}, which does not match "
                         f"{DVC_NAME_PATTERN.pattern}: rename the catalog entry")
    return result


def catalog_name(artifact: str, names: Iterable[str]) -> Tuple[str, str]:
    """``(catalog name, precision)`` of DVC artifact ``artifact``, among the catalog ``names``.

    The inverse of :func:`dvc_name` over the catalog (the mapping loses case, so it needs the
    names to choose from). A catalog name itself is accepted too (``precision`` then int8).

    Raises:
        ModelNotFoundError: no catalog name maps to ``artifact``; the message lists the DVC names.
    """
    names = list(names)
    if artifact in names:
        return artifact, DEFAULT_PRECISION
    table = {}
    for name in names:
        for precision in PRECISIONS:
            try:
                table.setdefault(dvc_name(name, precision), (name, precision))
            except ValueError:
                continue
    found: Optional[Tuple[str, str]] = table.get(artifact)
    if found is None:
        raise ModelNotFoundError(f"no catalog model has the DVC artifact name {artifact!r}; known: "
                                 f"{', '.join(sorted(table))}")
    return found


def semver(version: str) -> str:
    """A catalog version as the semver GTO registers: ``v1.5`` -> ``v1.5.0``, ``v2`` -> ``v2.0.0``.

    Raises:
        ValueError: not ``vMAJOR[.MINOR[.PATCH]]`` (or a full semver with a suffix).
    """
    if re.fullmatch(SEMVER, version):
        return version
    match = LOOSE_VERSION.match(version.strip())
    if not match:
        raise ValueError(f"version {version!r} is not vMAJOR.MINOR[.PATCH] (e.g. v1.5 or v1.5.0)")
    major, minor, patch = (int(x) if x else 0 for x in match.groups())
    return f"v{major}.{minor}.{patch}"

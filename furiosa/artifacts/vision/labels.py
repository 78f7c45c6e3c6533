"""Class names and dataset category ids for the label sets named in specs.yaml.

The text files in ``furiosa/artifacts/data`` hold one name per line and were generated once from
torchvision's bundled metadata::

    python -c "from torchvision.models._meta import _IMAGENET_CATEGORIES as I, _COCO_CATEGORIES as C; \\
    open('furiosa/artifacts/data/imagenet_classes.txt','w').write('\\n'.join(I)+'\\n'); \\
    open('furiosa/artifacts/data/coco_categories.txt','w').write('\\n'.join(C)+'\\n')"

``coco_categories.txt`` has 91 lines: line i is COCO category id i ("__background__" at 0, "N/A" for the
11 ids COCO does not use). The 80-class contiguous set of SSD-ResNet34 numbers the used ids in increasing
order, 1..80, exactly as the MLPerf reference builds its ``label_map`` from ``instances_val2017.json``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

from furiosa.artifacts.errors import SpecError

BACKGROUND = "__background__"
UNUSED = "N/A"


@dataclass(frozen=True)
class LabelSet:
    """Names and dataset ids of the network's output classes (index = network output index - offset)."""

    names: tuple[str, ...]  # name of each label id
    category_ids: tuple[int, ...]  # dataset id of each label id (COCO id for detection, index for ImageNet)


def _read(filename: str) -> tuple[str, ...]:
    try:
        text = resources.files("furiosa.artifacts").joinpath("data", filename).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"label file furiosa/artifacts/data/{filename} cannot be read: {exc}") from exc
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@functools.lru_cache(maxsize=None)
def label_set(name: str) -> LabelSet:
    """The label set ``name`` ("imagenet", "coco91", "coco80", "digits", "digits_coco").

    Raises SpecError for an unknown name.
    """
    if name == "imagenet":
        names = _read("imagenet_classes.txt")
        return LabelSet(names=names, category_ids=tuple(range(len(names))))
    if name in ("coco91", "coco80"):
        coco = _read("coco_categories.txt")
        if name == "coco91":
            return LabelSet(names=coco, category_ids=tuple(range(len(coco))))
        used = [i for i, n in enumerate(coco) if i == 0 or n != UNUSED]
        return LabelSet(names=tuple(coco[i] for i in used), category_ids=tuple(used))
    if name == "digits":
        return LabelSet(names=tuple(str(i) for i in range(10)), category_ids=tuple(range(10)))
    if name == "digits_coco":  # the generated digits detection dataset: category id d + 1 is digit d
        return LabelSet(names=(BACKGROUND, *(f"digit {i}" for i in range(10))), category_ids=tuple(range(11)))
    raise SpecError(f"unknown label set {name!r}; known: imagenet, coco91, coco80, digits, digits_coco")

"""Every model card of a catalog, as ``furiosa-artifacts docs`` writes them (and ``docs --check`` compares)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

from furiosa.artifacts.catalog.entries import read_entries
from furiosa.artifacts.facts import card_relpath, model_facts
from furiosa.artifacts.render.markdown import format_card
from furiosa.artifacts.render.plot import plot_png

__all__ = ["generated_cards"]


def generated_cards(root: Path) -> Dict[Path, Union[str, bytes]]:
    """Every model card (and plot, for built models) of the code entries in ``root``: path -> content."""
    root = Path(root)
    out: Dict[Path, Union[str, bytes]] = {}
    for entry in read_entries(root, validate=False):
        if entry.format != "code":
            continue
        facts = model_facts(root, entry.name, onnx_tensors=False)
        out[root / card_relpath(entry.name)] = format_card(facts)
        plot = plot_png(facts)
        if plot is not None:
            out[root / card_relpath(entry.name, "png")] = plot
    return out

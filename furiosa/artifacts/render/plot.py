"""The plot beside a model card (``docs/models/<name>.png``): fp32 vs int8 latency and file size.

Deterministic for a given matplotlib: the default style, fixed size and dpi, no PNG ``Software`` chunk.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, Optional

from furiosa.artifacts.errors import ArtifactsError
from furiosa.artifacts.facts import model_facts

__all__ = ["PLOT_DPI", "PLOT_SIZE", "plot_png", "render_plot"]

PLOT_DPI = 100
PLOT_SIZE = (7.0, 2.8)  # inches


def render_plot(root: Path, name: str) -> Optional[bytes]:
    """PNG bytes of fp32 vs int8 latency and file size of ``name``, or None when it is not built.

    Deterministic for a given matplotlib: the default style, fixed size and dpi, no metadata chunk.

    Raises:
        ArtifactsError: matplotlib is not installed (it comes with the ``build`` extra).
    """
    return plot_png(model_facts(root, name, onnx_tensors=False))


def plot_png(facts: Dict[str, Any]) -> Optional[bytes]:
    """PNG bytes of the plot of :func:`furiosa.artifacts.facts.model_facts`, or None when it is not built."""
    name, m = facts["name"], facts["metrics"]
    if m is None or m["latency"]["fp32_ms"] is None or m["sizes"]["fp32_bytes"] is None:
        return None
    try:
        import matplotlib.style
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ArtifactsError("model card plots need matplotlib: pip install -e \".[build]\"") from None
    lat, sizes = m["latency"], m["sizes"]
    colors = ("#4c72b0", "#dd8452")
    with matplotlib.style.context("default"):
        fig = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI)
        FigureCanvasAgg(fig)
        panels = ((f"latency (ms, batch {lat['batch']}, {lat['threads']} threads)", lat["fp32_ms"], lat["int8_ms"]),
                  ("file size (MB)", sizes["fp32_bytes"] / 1e6, sizes["int8_bytes"] / 1e6))
        for index, (title, fp32, int8) in enumerate(panels):
            ax = fig.add_subplot(1, 2, index + 1)
            bars = ax.bar(["fp32", "int8"], [fp32, int8], color=colors)
            ax.bar_label(bars, labels=[f"{fp32:.3g}", f"{int8:.3g}"], padding=2)
            ax.set_title(title, fontsize=9)
            ax.margins(y=0.2)
        suffix = " (SYNTHETIC weights: not for deployment)" if facts["synthetic"] else ""
        fig.suptitle(f"{name}{suffix}", fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    return buffer.getvalue()

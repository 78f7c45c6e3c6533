"""A replica of timm's Hub file ``timm/tf_efficientnetv2_s.in1k`` ``model.safetensors``.

timm writes Hub weights with ``timm.models._hub.save_for_hf``: ``safetensors.torch.save_file(model.state_dict())``
of the timm ``tf_efficientnetv2_s`` model (metadata ``{"format": "pt"}`` as ``huggingface_hub`` writes it), so the
keys are timm's own (``conv_stem.weight``, ``blocks.0.0.conv.weight``, ``bn1.running_var``, ...,
``classifier.bias``), BatchNorm ``num_batches_tracked`` included. The model is built here with timm directly,
not through our catalog code, with seeded random values.
"""

from __future__ import annotations

from pathlib import Path

from replicas import Replica

REAL_NAME = "model.safetensors"


def build(dest: Path, *, seed: int = 0, drop_counters: bool = False) -> Replica:
    """Write ``dest/model.safetensors``; ``drop_counters`` leaves out ``num_batches_tracked`` (older exports)."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model("tf_efficientnetv2_s", pretrained=False)
    # BatchNorm statistics measured on seeded noise, like a trained network's (random ones let activations of
    # this 40-block network grow to ~1e5 and float32 rounding breaks any parity check downstream)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, 192, 192, generator=generator))
    state = {}
    for key, value in model.state_dict().items():
        if drop_counters and key.endswith("num_batches_tracked"):
            continue
        state[key] = value.detach().contiguous()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / REAL_NAME
    save_file(state, str(path), metadata={"format": "pt"})
    return Replica(model="EfficientNetV2_S", path=path, expected=state)

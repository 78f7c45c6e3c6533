"""Training of the catalog's small model (DigitsConvNet on scikit-learn's bundled digits)."""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, Mapping, Tuple


from furiosa.artifacts.build.digits_split import digits_split
from furiosa.artifacts.errors import SpecError

log = logging.getLogger(__name__)

TRAIN_KEYS = {"dataset", "test_fraction", "epochs", "batch_size", "lr", "weight_decay"}


def validate_train_params(params: Mapping[str, Any], *, where: str) -> Dict[str, Any]:
    """Check the ``train`` mapping of a model's source; returns it as a plain dict.

    Raises:
        SpecError: unknown or missing keys, or values out of range.
    """
    unknown = set(params) - TRAIN_KEYS
    missing = TRAIN_KEYS - set(params)
    if unknown or missing:
        raise SpecError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}; "
                        f"expected exactly {sorted(TRAIN_KEYS)}")
    if params["dataset"] != "sklearn-digits":
        raise SpecError(f"{where}.dataset: {params['dataset']!r} is not supported; use 'sklearn-digits'")
    if not 0.0 < float(params["test_fraction"]) < 1.0:
        raise SpecError(f"{where}.test_fraction must be in (0, 1), got {params['test_fraction']}")
    if int(params["epochs"]) < 1 or int(params["batch_size"]) < 1 or float(params["lr"]) <= 0:
        raise SpecError(f"{where}: epochs, batch_size and lr must be positive")
    return dict(params)


def train_digits(params: Mapping[str, Any], *, seed: int) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Train DigitsConvNet; returns (state_dict, report with train/held-out accuracy and timing)."""
    import torch

    from furiosa.artifacts.vision.models import create_model

    torch.manual_seed(seed)
    split = digits_split(seed=seed, test_fraction=float(params["test_fraction"]))
    model = create_model("DigitsConvNet").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(params["lr"]),
                                  weight_decay=float(params["weight_decay"]))
    x_train, y_train = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    generator = torch.Generator().manual_seed(seed)
    batch = int(params["batch_size"])
    start = time.perf_counter()
    for epoch in range(int(params["epochs"])):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        log.info("epoch %d/%d loss %.4f", epoch + 1, params["epochs"], total / len(order))
    model.eval()
    with torch.no_grad():
        train_acc = float((model(x_train).argmax(1) == y_train).float().mean())
        test_acc = float((model(torch.from_numpy(split.x_test)).argmax(1) == torch.from_numpy(split.y_test))
                         .float().mean())
    report = {"train_accuracy": train_acc, "heldout_accuracy": test_acc, "train_seconds": time.perf_counter() - start,
              "train_samples": len(split.x_train), "heldout_samples": len(split.x_test)}
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, report

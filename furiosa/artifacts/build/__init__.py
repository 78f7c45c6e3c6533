"""Build library behind the DVC stages: export, calibrate, quantize, evaluate.

Import the submodules directly (``from furiosa.artifacts.build.export import
export_onnx``); this package imports nothing eagerly, so consumers that only
load binaries never pay for (or need) torch.

- :mod:`.export`: PyTorch -> ONNX fp32, checker and ONNX Runtime parity gate.
- :mod:`.calibrate`: calibration tensors as ``.npz`` and a CalibrationDataReader over them.
- :mod:`.quantize`: ONNX Runtime static INT8 quantization from validated settings.
- :mod:`.evaluate`: int8 vs fp32 agreement, latency, size, quality gates, metrics.json.
"""

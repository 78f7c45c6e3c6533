"""Vision models: specs (specs.yaml), numpy pre/postprocessing, and PyTorch network code (``models``).

Importing this package, ``specs``, ``preprocess`` or ``postprocess`` never imports torch; only
``furiosa.artifacts.vision.models`` and the converters (``convert``, ``convert_onnx``, ``convert_tf``) do.
"""

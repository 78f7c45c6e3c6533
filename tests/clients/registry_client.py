"""Runs inside a furiosa-registry virtual environment (not ours): one client call, JSON on stdout.

usage: registry_client.py list URI
       registry_client.py load URI NAME VERSION|-
       registry_client.py schema           (the pydantic Artifact field tree)
"""

import asyncio
import json
import sys


def _fields(model):
    out = {}
    for name, field in model.__fields__.items():
        sub = getattr(field.type_, "__fields__", None)
        out[name] = {"required": bool(field.required), "fields": _fields(field.type_) if sub else None}
    return out


def main(argv):
    from furiosa import registry

    if argv[0] == "schema":
        from furiosa.registry.artifact import Artifact, Format

        print(json.dumps({"artifact": _fields(Artifact), "formats": sorted(f.value for f in Format)}))
        return 0
    uri = argv[1]
    if argv[0] == "list":
        artifacts = asyncio.run(registry.list(uri))
        print(json.dumps([json.loads(a.json()) for a in artifacts]))
        return 0
    name, version = argv[2], (None if argv[3] == "-" else argv[3])
    model = asyncio.run(registry.load(uri, name, version))
    if model is None:
        print(json.dumps(None))
        return 3
    import onnx

    data = model.model
    proto = onnx.load_model_from_string(data)
    onnx.checker.check_model(proto, full_check=True)
    print(json.dumps({
        "name": model.name, "version": model.version, "description": model.description,
        "type": type(model).__module__ + "." + type(model).__name__, "bytes": len(data),
        "sha256": __import__("hashlib").sha256(data).hexdigest(),
        "inputs": [i.name for i in proto.graph.input], "outputs": [o.name for o in proto.graph.output],
        "torch_imported": "torch" in sys.modules,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

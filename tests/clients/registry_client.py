"""Runs inside a furiosa-registry virtual environment (not ours): one client call, JSON on stdout.

usage: registry_client.py list URI
       registry_client.py help URI NAME VERSION   (0.9.x)
       registry_client.py load URI NAME VERSION|-   (0.9.x: VERSION is passed to the entry point, - passes none)
       registry_client.py schema           (0.5.x: the pydantic Artifact field tree)

furiosa-registry 0.5.x lists ``Artifact`` objects read from artifacts.yaml; 0.9.x lists the names of the
root-level artifacts.py's model functions and returns ``furiosa.registry.Model`` instances.
"""

import asyncio
import json
import sys
from importlib.metadata import version as dist_version


def _fields(model):
    out = {}
    for name, field in model.__fields__.items():
        sub = getattr(field.type_, "__fields__", None)
        out[name] = {"required": bool(field.required), "fields": _fields(field.type_) if sub else None}
    return out


def _load(registry, uri, name, version, new_api):
    if new_api:
        return asyncio.run(registry.load(uri, name) if version is None else registry.load(uri, name, version))
    return asyncio.run(registry.load(uri, name, version))


def main(argv):
    from furiosa import registry

    new_api = tuple(int(x) for x in dist_version("furiosa-registry").split(".")[:2]) >= (0, 9)
    if argv[0] == "schema":
        from furiosa.registry.artifact import Artifact, Format

        print(json.dumps({"artifact": _fields(Artifact), "formats": sorted(f.value for f in Format)}))
        return 0
    uri = argv[1]
    if argv[0] == "list":
        artifacts = asyncio.run(registry.list(uri))
        print(json.dumps(artifacts if new_api else [json.loads(a.json()) for a in artifacts]))
        return 0
    name, version = argv[2], (None if argv[3] == "-" else argv[3])
    if argv[0] == "help":
        print(json.dumps(asyncio.run(registry.help(uri, name, version))))
        return 0
    model = _load(registry, uri, name, version, new_api)
    if model is None:
        print(json.dumps(None))
        return 3
    import onnx

    data = model.source if new_api else model.model
    proto = onnx.load_model_from_string(data)
    onnx.checker.check_model(proto, full_check=True)
    out = {
        "name": model.name, "version": model.version, "description": getattr(model, "description", None),
        "type": type(model).__module__ + "." + type(model).__name__, "bytes": len(data),
        "sha256": __import__("hashlib").sha256(data).hexdigest(),
        "inputs": [i.name for i in proto.graph.input], "outputs": [o.name for o in proto.graph.output],
        "torch_imported": "torch" in sys.modules,
    }
    if new_api:
        out.update(
            is_registry_model=isinstance(model, registry.Model), format=model.format.value, family=model.family,
            metadata=json.loads(model.metadata.json()) if model.metadata else None,
            tensors={"inputs": [t.dict() for t in model.inputs], "outputs": [t.dict() for t in model.outputs]},
            has_preprocess=callable(getattr(model, "preprocess", None)),
        )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

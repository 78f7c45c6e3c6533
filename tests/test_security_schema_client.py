"""Our catalog schema vs the real furiosa-registry 0.5.2 client on a few hundred generated entries.

Every entry is written as a one-entry artifacts.yaml; ONE process in the client's own venv
(tests/clients/venvs.py) reads each file the way ``registry.list`` does (``yaml.safe_load`` then
``Artifact.parse_obj``) and reports accepted/rejected. Our side reads the same file the way the
lint does (the positioned safe loader, then the JSON Schema).

Contract: **schema-valid implies client-valid**, always. Where the client accepts what our schema
rejects, every one of our schema errors must be one of the intended, documented differences in
:data:`STRICTER` (pydantic v1 coerces and is lenient; we are strict on purpose). The test fails on
any other disagreement, and also when a listed difference no longer occurs (keep the list true).
"""

from __future__ import annotations

import datetime
import json
import os
import random
import subprocess
from typing import Any, Dict, List, Optional

import pytest
import yaml

from clients.venvs import client_python
from furiosa.artifacts.catalog.yaml_io import load_document
from furiosa.artifacts.catalog.schema import iter_schema_errors

pytestmark = pytest.mark.slow  # runs the registry client in its own venv

#: Intended differences: our schema rejects, the 0.5.2 client (pydantic v1, extra=forbid) accepts.
STRICTER = {
    "number-as-string": "a YAML number or boolean where a string is expected (version: 1.10 would become '1.1'): "
                        "pydantic v1 turns it into a string, we ask for quotes",
    "explicit-null": "an optional key written as null (version: ~): the client's Optional fields take None, "
                     "our schema wants the key left out",
    "empty-string": "an empty version/family/location/doc or author: pydantic takes '', our schema has minLength 1",
    "name-pattern": "a name that is not [A-Za-z][A-Za-z0-9_]* (it must also be a Python function name)",
    "path-containment": "a location/doc that is absolute, contains '..' or a backslash",
    "date-format": "a publication date that is not YYYY-MM-DD text (2020-1-5, a timestamp with a time, "
                   "an integer the client reads as Unix seconds)",
    "url-scheme": "a publication url that is not http(s):// (the client's url is any string)",
    "list-as-mapping": "a list where metadata/publication must be a mapping: pydantic v1 builds the model from "
                       "dict(value), so [] (or a list of key/value pairs) passes the client",
}

CLIENT_SCRIPT = r"""
import json, sys
import yaml
from pydantic import ValidationError
from furiosa.registry.artifact import Artifact

out = []
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle.read())  # what registry.list does with artifacts.yaml ...
    try:
        [Artifact.parse_obj(a) for a in data["artifacts"]]  # ... then this, per entry
        out.append(True)
    except ValidationError:
        out.append(False)
print(json.dumps(out))
"""

GOOD = {
    "name": "ResNet50", "family": "ResNet", "version": "v1.5", "location": "furiosa/artifacts/artifacts.py",
    "format": "code", "doc": "docs/resnet.md",
    "metadata": {"description": "A classifier.", "publication": {
        "authors": ["A. Author", "B. Author"], "title": "Title", "publisher": "Pub",
        "date": datetime.date(2015, 12, 10), "url": "https://arxiv.org/abs/1512.03385"}},
}
MISSING = object()
BAD_VALUES: Dict[str, List[Any]] = {
    "name": ["9lives", "resnet-50", "", "na me", "\u540d\u524d", 50, 1.5, True, None, ["a"], {"a": 1}, MISSING],
    "family": ["", 3, 2.5, False, None, ["F"], MISSING],
    "version": ["1.10", "", 1.5, 2, True, None, ["v1"], {"v": 1}, MISSING],
    "location": ["models/X/int8.onnx", "../x.py", "/etc/x.py", "a\\b.py", "a/../../b.py", "", 5, None, ["a"], MISSING],
    "format": ["onnx", "tflite", "pickle", "CODE", "", 1, None, ["code"], MISSING],
    "doc": ["../x.md", "/abs.md", "", "d\\x.md", 3, None, MISSING],
    "metadata": [None, {}, "text", [], 5, MISSING, {"extra": 1}],
    "metadata.description": ["", 5, 1.5, None, ["d"], MISSING],
    "metadata.publication": [None, {}, "p", [], [["title", "T"]], MISSING, {"doi": "10.1/x"}],
    "metadata.publication.authors": [[], "A. Author", [1, 2], [""], None, [None], [["a"]], MISSING],
    "metadata.publication.title": ["", 5, None, MISSING],
    "metadata.publication.publisher": [7, None, MISSING],
    "metadata.publication.date": ["2015-12-10", "2020-02-30", "2020-1-5", "yesterday", "", 1450000000, 20151210,
                                  datetime.datetime(2015, 12, 10, 12, 30), None, "2015-12-10T00:00:00", MISSING],
    "metadata.publication.url": ["http://x.org", "javascript:alert(1)", "ftp://x.org/a", "https://a b", "", 5,
                                 "arxiv.org/abs/1", None, MISSING],
    "extra": [{"sha256": "ab"}, {"metrics": {"top1": 0.7}}, {"Name": "x"}],
}
NUMBER = (int, float, bool)


def _set(entry: Dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = entry
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            return  # the parent was replaced by a non-mapping: nothing to set
        node = node[part]
    if value is MISSING:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def generate(count: int, seed: int = 20240601) -> List[Dict[str, Any]]:
    """``count`` entries: the good one with 1-3 fields replaced (each field's good value stays likely)."""
    rng = random.Random(seed)
    entries: List[Dict[str, Any]] = []
    fields = sorted(BAD_VALUES)
    while len(entries) < count:
        entry = yaml.safe_load(yaml.safe_dump(GOOD))  # deep copy, dates kept
        for field in rng.sample(fields, rng.choice([1, 1, 2, 3])):
            if field == "extra":
                entry.update(rng.choice(BAD_VALUES["extra"]))
            else:
                _set(entry, field, rng.choice(BAD_VALUES[field]))
        entries.append(entry)
    return entries


def classify(error) -> Optional[str]:
    """Which intended difference (a key of STRICTER) one of our schema errors is, or None."""
    field = str(error.absolute_path[-1]) if error.absolute_path else ""
    instance = error.instance
    if error.validator == "type" and instance is None:
        return "explicit-null"
    if error.validator == "type" and error.validator_value == "string" and isinstance(instance, NUMBER):
        return "date-format" if field == "date" else "number-as-string"
    if error.validator == "type" and error.validator_value == "object" and isinstance(instance, list):
        return "list-as-mapping"
    if error.validator == "minLength":
        return "empty-string"
    if field == "name" and error.validator == "pattern":
        return "name-pattern"
    if field in ("location", "doc") and error.validator == "pattern":
        return "path-containment"
    if field == "date" and error.validator in ("pattern", "format"):
        return "date-format"
    if field == "url" and error.validator in ("pattern", "format"):
        return "url-scheme"
    return None


def test_schema_valid_implies_client_valid_and_differences_are_the_listed_ones(tmp_path):
    entries = generate(300)
    paths = []
    for index, entry in enumerate(entries):
        path = tmp_path / f"{index:03d}" / "artifacts.yaml"
        path.parent.mkdir()
        path.write_text(yaml.safe_dump({"artifacts": [entry]}, allow_unicode=True, sort_keys=False), "utf-8")
        paths.append(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.run([str(client_python("0.5.2")), "-c", CLIENT_SCRIPT, *map(str, paths)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    client = json.loads(proc.stdout)
    assert len(client) == len(entries)

    ours_only_rejects: Dict[str, int] = {}
    disagreements = []
    for path, entry, client_ok in zip(paths, entries, client):
        errors = list(iter_schema_errors(load_document(path).data))
        if not errors:
            if not client_ok:
                disagreements.append(f"schema-valid but the client rejects it: {entry}")
            continue
        if not client_ok:
            continue  # both reject
        kinds = [classify(e) for e in errors]
        if None in kinds:
            unknown = [f"{list(e.absolute_path)} {e.validator}: {e.message}"
                       for e, k in zip(errors, kinds) if k is None]
            disagreements.append(f"client accepts, our schema rejects for an unlisted reason {unknown}: {entry}")
        for kind in set(kinds) - {None}:
            ours_only_rejects[kind] = ours_only_rejects.get(kind, 0) + 1
    assert not disagreements, "\n".join(disagreements[:10])
    assert set(ours_only_rejects) == set(STRICTER), (
        f"listed differences that did not occur: {set(STRICTER) - set(ours_only_rejects)}")
    both_ok = sum(1 for e, c in zip(paths, client) if c and not list(iter_schema_errors(load_document(e).data)))
    assert both_ok >= 20 and sum(1 for c in client if not c) >= 50  # the sample covers both verdicts

"""The catalog's JSON Schema (a package file; ``schema/artifacts.schema.json`` links to it)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Dict, Iterator

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

SCHEMA_FILE = "artifacts.schema.json"


@lru_cache(maxsize=1)
def load_schema() -> Dict[str, Any]:
    """The catalog schema as a dict (JSON Schema 2020-12)."""
    text = resources.files("furiosa.artifacts.catalog").joinpath(SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def validator() -> Draft202012Validator:
    """A validator for the catalog schema that also checks ``format`` (date, uri)."""
    return Draft202012Validator(load_schema(), format_checker=FormatChecker())


def iter_schema_errors(data: Any) -> Iterator[ValidationError]:
    """Every schema violation in ``data``, in document order."""
    return iter(sorted(validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]))

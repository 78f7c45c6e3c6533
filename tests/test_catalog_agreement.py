"""One registry: artifacts.yaml, params.yaml, specs.yaml, the entry points and the network builders agree.

Parametrised over the catalog: every ``code`` entry has its build recipe (params.yaml), its run-time facts
(specs.yaml), its generated entry point and its ``@register_model`` builder, living in the network file
params.yaml names; every binary entry is a build of a code entry (resolved in one place); and nothing
exists anywhere for a name the catalog does not list.
"""

from __future__ import annotations

import ast
import textwrap

import pytest
import yaml

from conftest import REPO_ROOT
from furiosa.artifacts.catalog.entries import built_binary, read_entries
from furiosa.artifacts.errors import CatalogError
from furiosa.artifacts.layout import binary_relpath
from furiosa.artifacts.registries.entry_module import ENTRY_MODULE, check_entry_module, render_entry_module

ENTRIES = read_entries(REPO_ROOT)
CODE = [e.name for e in ENTRIES if e.format == "code"]
BINARIES = [e.name for e in ENTRIES if e.format != "code"]
PARAMS = yaml.safe_load((REPO_ROOT / "params.yaml").read_text("utf-8"))["models"]
SPECS = yaml.safe_load((REPO_ROOT / "furiosa/artifacts/vision/specs.yaml").read_text("utf-8"))


def _entry_functions() -> list:
    tree = ast.parse((REPO_ROOT / ENTRY_MODULE).read_text("utf-8"))
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]


@pytest.mark.parametrize("name", CODE)
def test_code_entry_has_params_specs_entry_point_and_builder(name):
    from furiosa.artifacts.vision.models import builder_file, create_model

    entry = next(e for e in ENTRIES if e.name == name)
    assert entry.location == ENTRY_MODULE
    assert name in PARAMS, f"params.yaml has no models.{name} (its build recipe)"
    assert name in SPECS, f"specs.yaml has no {name} entry (its run-time facts)"
    assert name in _entry_functions(), f"{ENTRY_MODULE} has no {name}(): run `furiosa-artifacts generate`"
    network = PARAMS[name]["network"]
    assert builder_file(name) == network, f"params.yaml says {network}; the builder lives in {builder_file(name)}"
    model = create_model(name)
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("name", BINARIES)
def test_binary_entry_is_a_build_of_a_code_entry(name):
    entry = next(e for e in ENTRIES if e.name == name)
    built = built_binary(ENTRIES, entry)
    assert built is not None, f"{name} ({entry.location}) is no pipeline build of a code entry"
    code, precision = built
    assert entry.location == binary_relpath(code.name, precision)
    assert code.name in CODE


def test_no_extras_anywhere():
    from furiosa.artifacts.vision.models import list_models

    assert set(PARAMS) == set(CODE), "params.yaml models and catalog code entries differ"
    assert set(SPECS) == set(CODE), "specs.yaml entries and catalog code entries differ"
    assert _entry_functions() == CODE, "entry points and catalog code entries differ (or are out of order)"
    assert set(list_models()) == set(CODE), "registered network builders and catalog code entries differ"
    assert check_entry_module(REPO_ROOT) == []


def test_names_are_consistent_across_files():
    """The same spelling everywhere (a loose match would hide a typo): model directory, DVC, binaries."""
    builds = {e.name: built_binary(ENTRIES, e) for e in ENTRIES if e.format != "code"}
    for name in CODE:
        int8 = [b for b, built in builds.items() if built and built[0].name == name and built[1] == "int8"]
        assert int8 == [f"{name}_INT8"], f"the int8 binary entry of {name} must be {name}_INT8, found {int8}"
    network_files = [m["network"] for m in PARAMS.values()]
    assert len(set(network_files)) == len(network_files), "two models share one network file"


def test_a_second_builder_for_a_registered_name_is_refused():
    from furiosa.artifacts.vision.models import create_model, register_model

    create_model("DigitsConvNet")  # its network file is imported and registered

    def impostor(*, num_classes: int = 10):
        raise AssertionError("never built")

    with pytest.raises(CatalogError, match="two network builders for 'DigitsConvNet'"):
        register_model("DigitsConvNet")(impostor)
    assert create_model("DigitsConvNet").__class__.__name__ == "DigitsConvNet"


def test_entry_module_is_rendered_from_the_catalog():
    entries = read_entries(REPO_ROOT)
    text = render_entry_module(entries)
    namespace: dict = {}
    exec(compile(text, ENTRY_MODULE, "exec"), namespace)  # our own generated source, as the registry imports it
    assert all(callable(namespace[n]) for n in CODE)
    assert namespace["DigitsConvNet"].__doc__.split()[:3] == textwrap.dedent(
        next(e for e in entries if e.name == "DigitsConvNet").description).split()[:3]

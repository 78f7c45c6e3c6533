"""Every file the tools read, fuzzed: the library raises only its own errors, never a traceback, never hangs.

A seeded mutation fuzzer (deterministic: the same inputs on every run) starts from the repository's real
files (artifacts.yaml, dvc.yaml, params.yaml, .gto, .dvc/config, specs.yaml) and from a real built
workspace's dvc.lock and metrics.json (``tests/fuzz_seeds/``), and mutates them the ways the attack run
did: YAML 1.1/1.2 ambiguous scalars (``yes``, ``1:20``, ``017``, ``0o17``, ``1_000``, ``.inf``, ``~``),
bad dates, wrong types in every field (a list root, ``do:`` a list, ``outs: 5``), alias bombs, deep
nesting, non-UTF-8 bytes, terminal escapes, truncation, random byte edits. Each input is written into a
scratch repository and read, in this process, by every library function that reads that file in
``lint`` / ``list`` / ``load`` / ``show`` / ``verify`` / ``pull``. Any exception that is not an
``ArtifactsError`` is a traceback; any single input taking more than 5 s (a SIGALRM watchdog) is a hang.
Both counts must be 0; the counts per file are printed (``-s``).

The YAML 1.1 / 1.2 agreement is a property here too: whenever lint passes a mutated catalog, PyYAML (what
the furiosa-registry client and our runtime reader use) must read every scalar exactly as lint did.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import shutil
import signal
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from furiosa.artifacts.errors import ArtifactsError

REPO = Path(__file__).resolve().parents[1]
SEEDS = Path(__file__).resolve().parent / "fuzz_seeds"
HANG_S = 5
#: The whole commands (lint, show, verify) run on every WIDE_EVERY-th input; the file's own reader on all.
WIDE_EVERY = 100
#: Every LINT_EVERY-th mutated catalog is also linted and, when clean, compared with PyYAML's reading.
LINT_EVERY = 15
MIN_INPUTS = 10_000
MODEL = "DigitsConvNet"
#: Inputs per file (total 10,000+).
BUDGET = {"artifacts.yaml": 1200, "dvc.yaml": 1200, "params.yaml": 1400, "dvc.lock": 1400,
          ".dvc/config": 1400, "metrics.json": 1400, "specs.yaml": 1300, ".gto": 1000}
SPECS = "furiosa/artifacts/vision/specs.yaml"
METRICS = f"models/{MODEL}/metrics.json"

#: Scalars that YAML 1.1 and 1.2 read differently, that PyYAML cannot construct, or that are just hostile.
HOSTILE_SCALARS = [
    "yes", "no", "on", "off", "y", "n", "Yes", "OFF", "1:20", "190:20:30", "017", "0o17", "0x1F", "1_000",
    ".inf", "-.inf", ".nan", "~", "null", "2020-01-05", "2020-13-45", "99999-01-01", "2020-01-05 10:00:00",
    "1e400", "-1", "0", "83367", "'83367'", "1.10", "[]", "{}", "[1, [2, [3]]]", "{a: {b: {c: 1}}}", "5",
    "!!python/object/apply:os.system ['echo pwned']", "!!binary aGVsbG8=", "!custom x", "&a x", "*a", "*undefined",
    "\"\\x1b[31mred\\x1b[0m\"", "\"\\u202eevil\"", "\"\\0nul\"", "'" + "x" * 5000 + "'", "|\n  block\n  text",
    "\"../../etc/passwd\"", "/etc/passwd", "\"C:\\\\Windows\"", "'%s%s%s'", "'${item.name}'", "${nope}",
]
STRUCTURES = [
    "- a\n- b\n", "[]\n", "{}\n", "5\n", "''\n", "~\n", "--- a\n--- b\n", "\xef\xbb\xbfstages: {}\n",
    "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
    "x: " + "[" * 200 + "]" * 200 + "\n", "x: " + "{a: " * 60 + "1" + "}" * 60 + "\n",
    "stages:\n  s:\n    do: [1, 2]\n    foreach: ${models}\n", "stages:\n  s:\n    outs: 5\n",
    "stages:\n  s:\n    foreach: [1, 2]\n    do:\n      outs: [${item}, ${key}]\n",
    "stages: [1, 2]\n", "artifacts: {a: 1}\n", "artifacts: [1, [2], {name: [x]}]\n",
]


class Hang(Exception):
    pass


@contextlib.contextmanager
def watchdog(seconds: int):
    def ring(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------- the mutator


def _mutate_text(text: str, rng: random.Random) -> bytes:
    """One hostile variant of the YAML/INI/JSON ``text`` (a few stacked edits)."""
    lines = text.splitlines(keepends=True)
    for _ in range(rng.choice((1, 1, 2, 3))):
        op = rng.randrange(9)
        if op <= 2 and lines:  # replace a value (or a key) with a hostile scalar
            index = rng.randrange(len(lines))
            line = lines[index]
            scalar = rng.choice(HOSTILE_SCALARS)
            if ": " in line and rng.random() < 0.8:
                head, _, _ = line.partition(": ")
                lines[index] = f"{head}: {scalar}\n"
            elif line.lstrip().startswith("- "):
                lines[index] = line[: len(line) - len(line.lstrip())] + f"- {scalar}\n"
            else:
                indent = line[: len(line) - len(line.lstrip())]
                lines[index] = f"{indent}{scalar.splitlines()[0]}: {rng.choice(HOSTILE_SCALARS)}\n"
        elif op == 3 and lines:  # delete, duplicate or swap lines
            a, b = sorted(rng.randrange(len(lines)) for _ in range(2))
            choice = rng.randrange(3)
            if choice == 0:
                del lines[a:b + 1]
            elif choice == 1:
                lines[a:a] = lines[a:b + 1]
            else:
                lines[a], lines[b] = lines[b], lines[a]
        elif op == 4:  # a hostile whole document, or one spliced in
            structure = rng.choice(STRUCTURES)
            if rng.random() < 0.5 or not lines:
                lines = [structure]
            else:
                lines.insert(rng.randrange(len(lines) + 1), structure)
        elif op == 5 and lines:  # re-indent a line (tabs, odd spaces)
            index = rng.randrange(len(lines))
            lines[index] = rng.choice(("\t", " ", "   ", "")) + lines[index].lstrip(" ")
        elif op == 6 and lines:  # escape sequences and bidi into a line
            index = rng.randrange(len(lines))
            lines[index] = lines[index].rstrip("\n") + rng.choice(("\x1b[2J", "\u202e", "\x07", "\x00", "\ud800"))
            lines[index] += "\n"
        elif op == 7:  # truncate
            joined = "".join(lines)
            lines = [joined[: rng.randrange(len(joined) + 1)]]
        else:
            pass  # byte-level edits below
    data = "".join(lines).encode("utf-8", "surrogatepass")
    if rng.random() < 0.25:  # random bytes: flips, inserts (non-UTF-8 included), deletes
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(buf) + 1)
            kind = rng.randrange(3)
            if kind == 0 and pos < len(buf):
                buf[pos] ^= 1 << rng.randrange(8)
            elif kind == 1:
                buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
            else:
                del buf[pos:pos + rng.randint(1, 16)]
        data = bytes(buf)
    return data


def _mutate_json(text: str, rng: random.Random) -> bytes:
    """metrics.json: a value anywhere replaced by a wrong type, or the text mutated."""
    if rng.random() < 0.3:
        return _mutate_text(text, rng)
    if rng.random() < 0.05:
        return rng.choice([b"{}", b"[]", b"null", b"5", b"\"x\"", b"{\"weights\": []}", b"[" * 10_000])
    data = json.loads(text)
    hostile: List[Any] = [{}, [], None, "x", -1, 0, 1e308, float("nan"), float("inf"), True, "\x1b[31m",
                          {"a": {"b": {}}}, [[[]]], "9" * 400, {"source": "synthetic"}]
    for _ in range(rng.randint(1, 4)):
        node, path = data, []
        while isinstance(node, (dict, list)) and node and rng.random() < 0.7:
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            path.append((node, key))
            node = node[key]
        if path:
            parent, key = path[-1]
            if isinstance(parent, dict) and rng.random() < 0.2:
                del parent[key]
            else:
                parent[key] = copy.deepcopy(rng.choice(hostile))
        else:
            data = copy.deepcopy(rng.choice(hostile))
    return json.dumps(data).encode()


# --------------------------------------------------------------------------- readers, per file


def _readers() -> Dict[str, Tuple[List[Callable[[Path], Any]], List[Callable[[Path], Any]]]]:
    """Per file: (the readers run on every input, the whole commands run on every WIDE_EVERY-th input)."""
    from furiosa.artifacts.catalog.entries import read_entries
    from furiosa.artifacts.catalog.lint import lint_catalog, unbuilt_binaries
    from furiosa.artifacts.catalog.pipeline import declared_outputs
    from furiosa.artifacts.facts import model_facts, read_metrics
    from furiosa.artifacts.render.markdown import render_card
    from furiosa.artifacts.render.text import format_facts
    from furiosa.artifacts.pipeline.params import load_params
    from furiosa.artifacts.registries import check_dvc_artifacts
    from furiosa.artifacts.registries.dvc_artifacts import gto_config_problems
    from furiosa.artifacts.storage.lockfile import read_outputs
    from furiosa.artifacts.storage.remote import dvc_cache_dir, read_config, read_remote
    from furiosa.artifacts.verify import verify_models
    from furiosa.artifacts.vision.specs import read_specs

    def show(root: Path) -> None:
        format_facts(model_facts(root, MODEL, onnx_tensors=False))

    def lint(root: Path) -> None:
        lint_catalog(root)
        unbuilt_binaries(root)

    return {
        "artifacts.yaml": ([lambda root: read_entries(root, validate=False), unbuilt_binaries], [lint, show]),
        "dvc.yaml": ([declared_outputs], [lint, check_dvc_artifacts]),
        "params.yaml": ([lambda root: load_params(root / "params.yaml")], [lint, show]),
        "dvc.lock": ([read_outputs], [declared_outputs, show, lambda root: verify_models(root, [MODEL]), lint]),
        ".dvc/config": ([read_config, lambda root: read_remote(root), dvc_cache_dir], []),
        "metrics.json": ([lambda root: read_metrics(root, MODEL)],
                         [show, lambda root: render_card(root, MODEL), lambda root: verify_models(root, [MODEL])]),
        "specs.yaml": ([lambda root: read_specs(root / SPECS)], [show]),
        ".gto": ([gto_config_problems], [check_dvc_artifacts, lint]),
    }


def _scratch_repo(tmp: Path) -> Path:
    root = tmp / "repo"
    for name in ("artifacts.yaml", "dvc.yaml", "params.yaml", ".gto", ".dvc/config", SPECS,
                 "furiosa/artifacts/artifacts.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, root / name)
    shutil.copyfile(SEEDS / "dvc.lock", root / "dvc.lock")
    (root / METRICS).parent.mkdir(parents=True)
    shutil.copyfile(SEEDS / "metrics.json", root / METRICS)
    return root


def _target(name: str) -> str:
    return {"specs.yaml": SPECS, "metrics.json": METRICS}.get(name, name)


@pytest.mark.slow
def test_every_file_the_tools_read_survives_10000_fuzzed_inputs(tmp_path: Path) -> None:
    from furiosa.artifacts.catalog.yaml_io import load_document, parse_yaml, yaml11_differences
    from furiosa.artifacts.catalog.lint import lint_catalog
    from furiosa.artifacts.errors import CatalogReadError

    root = _scratch_repo(tmp_path)
    readers = _readers()
    for primary, wide in readers.values():  # warm up: first imports (onnx, jsonschema, ruamel) are not inputs
        for reader in primary + wide:
            reader(root)
    inputs: Counter = Counter()
    own_errors: Counter = Counter()
    clean_catalogs = 0
    crashes: List[str] = []
    hangs: List[str] = []
    disagreements: List[str] = []
    for file, budget in BUDGET.items():
        path = root / _target(file)
        original = path.read_bytes()
        rng = random.Random(f"issue-17/{file}")
        mutate = _mutate_json if file == "metrics.json" else _mutate_text
        for index in range(budget):
            data = mutate(original.decode("utf-8"), rng)
            path.write_bytes(data)
            inputs[file] += 1
            primary, wide = readers[file]
            for reader in primary + (wide if index % WIDE_EVERY == 0 else []):
                try:
                    with watchdog(HANG_S):
                        reader(root)
                except ArtifactsError:
                    own_errors[file] += 1
                except Hang:
                    hangs.append(f"{file} #{index}: {data[:300]!r}")
                except Exception as exc:  # noqa: BLE001 - a traceback is what we count
                    frame = traceback.extract_tb(exc.__traceback__)[-1]
                    crashes.append(f"{file} #{index}: {type(exc).__name__}: {str(exc)[:200]} at "
                                   f"{frame.filename}:{frame.lineno} (input {data[:200]!r})")
            if file == "artifacts.yaml" and index % LINT_EVERY == 0:  # YAML 1.1/1.2: lint-clean => PyYAML agrees
                try:
                    with watchdog(HANG_S):
                        if not lint_catalog(root, stage_deps=False):  # the fuzz root has no stage scripts
                            clean_catalogs += 1
                            ours = load_document(path).data
                            theirs = parse_yaml(data, source=str(path), exact=True)
                            if yaml11_differences(theirs, ours):
                                disagreements.append(f"#{index}: {data[:300]!r}")
                except CatalogReadError:
                    pass
                except Hang:
                    hangs.append(f"{file} #{index} (lint): {data[:300]!r}")
                except Exception as exc:  # noqa: BLE001
                    frame = traceback.extract_tb(exc.__traceback__)[-1]
                    crashes.append(f"{file} #{index} (lint): {type(exc).__name__}: {str(exc)[:200]} at "
                                   f"{frame.filename}:{frame.lineno} (input {data[:200]!r})")
        path.write_bytes(original)
    total = sum(inputs.values())
    print(f"\nfuzzed inputs per file: {dict(inputs)}; total {total}; refused with our own errors (reader calls): "
          f"{dict(own_errors)}; lint-clean catalogs checked against PyYAML: {clean_catalogs}; "
          f"tracebacks: {len(crashes)}; hangs over {HANG_S} s: {len(hangs)}")
    assert not hangs, "\n".join(hangs[:5])
    assert not crashes, f"{len(crashes)} tracebacks:\n" + "\n".join(crashes[:40])
    assert not disagreements, "lint passed catalogs PyYAML reads differently:\n" + "\n".join(disagreements[:5])
    assert total >= MIN_INPUTS
    assert clean_catalogs > 0  # the agreement property was exercised


@pytest.mark.parametrize("scalar", ["yes", "no", "on", "off", "1:20", "017", "0o17", "2020-01-05"])
def test_lint_flags_every_scalar_yaml_1_1_reads_differently(tmp_path: Path, scalar: str) -> None:
    from furiosa.artifacts.catalog.lint import lint_catalog

    root = _scratch_repo(tmp_path)
    text = (root / "artifacts.yaml").read_text()
    first = text.index("family: ")
    end = text.index("\n", first)
    (root / "artifacts.yaml").write_text(text[:first] + f"family: {scalar}" + text[end:])
    problems = lint_catalog(root)
    assert [p.pointer for p in problems] == ["/artifacts/0/family"], problems
    assert "YAML 1.1" in problems[0].message and "quote it" in problems[0].message
    (root / "artifacts.yaml").write_text(text[:first] + f"family: \"{scalar}\"" + text[end:])
    assert [p for p in lint_catalog(root) if p.file.endswith("artifacts.yaml")] == []  # (dvc.yaml's labels follow)


_SCALAR_CHARS = "0123456789:._-+eEoOxXbByYnNtTfFaAlLsSuU~ "


@pytest.mark.slow  # fast tier: heavy (a fuzz run, a 1200x1200 replica or a full-size conversion)
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(value=st.text(alphabet=_SCALAR_CHARS, min_size=1, max_size=8))
def test_a_scalar_lint_accepts_is_read_the_same_by_pyyaml(scratch_catalog: Path, value: str) -> None:
    """Property: put any short plain scalar (digits, colons, signs, letters of yes/no/true/null/inf/0x/0o)
    in a string field; if lint passes the catalog, PyYAML (YAML 1.1, the client's parser) reads every
    node exactly as lint (YAML 1.2) does."""
    from furiosa.artifacts.catalog.yaml_io import load_document, parse_yaml, yaml11_differences
    from furiosa.artifacts.catalog.lint import lint_catalog
    from furiosa.artifacts.errors import CatalogReadError

    path = scratch_catalog / "artifacts.yaml"
    text = CLEAN_CATALOG.read_text()
    first = text.index("family: ")
    end = text.index("\n", first)
    path.write_text(text[:first] + f"family: {value}" + text[end:])
    try:
        problems = [p for p in lint_catalog(path, pipeline_outputs=()) if "does not exist" not in p.message]
    except CatalogReadError:
        return
    if not problems:
        theirs = parse_yaml(path.read_bytes(), source=str(path), exact=True)
        assert yaml11_differences(theirs, load_document(path).data) == [], value


CLEAN_CATALOG = REPO / "artifacts.yaml"


@pytest.fixture(scope="module")
def scratch_catalog(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("catalog")
    (root / "furiosa" / "artifacts").mkdir(parents=True)
    shutil.copyfile(REPO / "furiosa" / "artifacts" / "artifacts.py", root / "furiosa" / "artifacts" / "artifacts.py")
    return root

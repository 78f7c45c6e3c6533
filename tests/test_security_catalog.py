"""Untrusted catalogs, property-based: random and mutated artifacts.yaml never crash the lint or the loader.

Hand-written bad catalogs (one per rule, hostile YAML) are in test_catalog_lint.py; here hypothesis
mutates the real catalog (keys deleted, added, renamed; values of the wrong type; unicode, NUL and
control characters; truncation; random bytes) and checks the contracts that must hold for *any* input:

* ``lint_catalog`` returns problems or raises ``CatalogReadError`` (whose message starts with the
  file), nothing else; every problem names the file, a line and column inside it, and a JSON pointer;
* ``furiosa-artifacts lint`` exits 0, 1 or 2 and never prints a traceback;
* the runtime reader (``read_entries(validate=False)``, ``list_models``, ``load``) raises only
  ``ArtifactsError`` subclasses.
"""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path
from typing import Any, List

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as _event
from hypothesis import strategies as st
from hypothesis.control import current_build_context

import furiosa.artifacts as fa
from conftest import REPO_ROOT, copy_repo, run_cli
from furiosa.artifacts.catalog.entries import read_entries
from furiosa.artifacts.catalog.lint import lint_catalog
from furiosa.artifacts.catalog.pipeline import declared_outputs
from furiosa.artifacts.errors import ArtifactsError, CatalogReadError

REAL_TEXT = (REPO_ROOT / "artifacts.yaml").read_text("utf-8")
REAL_DATA = yaml.safe_load(REAL_TEXT)
FIELD_NAMES = ["artifacts", "name", "version", "family", "location", "format", "doc", "metadata", "description",
               "publication", "authors", "title", "publisher", "date", "url", "sha256", "size"]
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared sub-objects out in full (the catalog forbids anchors and aliases)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A copy of the repository's shippable files (the code module and docs the lint checks exist), without
    dvc.yaml: the lint's cross-check of dvc.yaml's ``artifacts:`` against the catalog (problems located in
    dvc.yaml) is exercised separately, in ``test_mutated_catalogs_with_the_dvc_yaml_cross_check``."""
    copy = copy_repo(tmp_path_factory.mktemp("security-catalog") / "repo")
    (copy / "dvc.yaml").unlink()
    return copy


@pytest.fixture(scope="module")
def root_with_pipeline(tmp_path_factory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("security-catalog-pipeline") / "repo")


OUTPUTS = frozenset(declared_outputs(REPO_ROOT))  # pipeline outputs (same dvc.yaml/params.yaml in the copy)


# --------------------------------------------------------------------------- strategies

# every character, surrogates, NUL and controls included, and a few that break naive code on purpose
NASTY = st.sampled_from(["\0", "\x1b[31m", "\u202e", "\ufeff", "..", "/", "\\", ":", "#", "&a", "*a",
                         "!!python/name:os.system", "\n", "\t", "'", '"', "{", "[", "- ", "? ", "%YAML 1.1", "---",
                         "\udc80", "1e309", "0x1F"])
TEXT = st.one_of(st.text(st.characters(exclude_categories=()), max_size=12), NASTY,
                 st.lists(NASTY, min_size=1, max_size=4).map("".join))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), TEXT,
                    st.dates(), st.datetimes(), st.sampled_from(FIELD_NAMES + ["code", "onnx", "tflite", "v1.5"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), TEXT), inner, max_size=3)),
    max_leaves=6)
KEYS = st.one_of(st.sampled_from(FIELD_NAMES), TEXT, st.integers(-3, 3), st.none(), st.booleans())


def _containers(node: Any, path: tuple = ()) -> List[tuple]:
    out = [path] if isinstance(node, (dict, list)) else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        out.extend(_containers(child, path + (key,)))
    return out


def _get(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


@st.composite
def mutated_data(draw) -> Any:
    """The real catalog's data with 1-4 structural mutations."""
    data = copy.deepcopy(REAL_DATA)
    for _ in range(draw(st.integers(1, 4))):
        if not isinstance(data, (dict, list)) or draw(st.integers(0, 30)) == 0:
            data = draw(VALUES)  # replace the whole document
            continue
        target = _get(data, draw(st.sampled_from(_containers(data))))
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        op = draw(st.sampled_from(["delete", "add", "rename", "retype", "retype", "duplicate"]))
        if not keys and op != "add":
            op = "add"
        if op == "add":
            if isinstance(target, dict):
                target[draw(KEYS)] = draw(VALUES)
            else:
                target.insert(draw(st.integers(0, len(target))), draw(VALUES))
            continue
        key = draw(st.sampled_from(keys))
        if op == "delete":
            del target[key]
        elif op == "rename" and isinstance(target, dict):
            target[draw(KEYS)] = target.pop(key)
        elif op == "duplicate" and isinstance(target, list):
            target.append(copy.deepcopy(target[key]))
        else:
            target[key] = draw(VALUES)
    return data


def _dump(data: Any, *, unicode: bool, flow: bool) -> str:
    return yaml.dump(data, Dumper=_NoAliasDumper, allow_unicode=unicode, default_flow_style=flow, sort_keys=False)


@st.composite
def catalog_bytes(draw) -> bytes:
    """Bytes of a hostile catalog: mutated data, then maybe text-level damage."""
    kind = draw(st.sampled_from(["data", "data", "data", "text", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=400))
    if kind == "text":
        text = REAL_TEXT
    else:
        text = _dump(draw(mutated_data()), unicode=draw(st.booleans()), flow=draw(st.booleans()))
    raw = text.encode("utf-8", "surrogatepass")
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]) if kind == "data" else st.integers(1, 3))):
        op = draw(st.sampled_from(["truncate", "insert", "delete", "swap-lines", "replace-byte"]))
        pos = draw(st.integers(0, len(raw)))
        if op == "truncate":
            raw = raw[:pos]
        elif op == "insert":
            raw = raw[:pos] + draw(st.one_of(st.binary(max_size=8), TEXT.map(
                lambda t: t.encode("utf-8", "surrogatepass")))) + raw[pos:]
        elif op == "delete":
            raw = raw[:pos] + raw[pos + draw(st.integers(1, 64)):]
        elif op == "replace-byte" and raw:
            pos = min(pos, len(raw) - 1)
            raw = raw[:pos] + bytes([draw(st.integers(0, 255))]) + raw[pos + 1:]
        else:
            lines = raw.split(b"\n")
            if len(lines) > 1:
                i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            raw = b"\n".join(lines)
    return raw


# --------------------------------------------------------------------------- properties


def event(value: str) -> None:
    """hypothesis.event when inside a property test (shown with --hypothesis-show-statistics)."""
    try:
        current_build_context()
    except Exception:  # noqa: BLE001 - not inside a hypothesis test
        return
    _event(value)


def check_lint(path: Path, raw: bytes, outputs: set) -> List[Any]:
    """Lint ``path`` (holding ``raw``) and check the output contract; returns the problems (or [] on a read error)."""
    try:
        problems = lint_catalog(path, pipeline_outputs=outputs)
    except CatalogReadError as exc:
        assert str(exc).startswith(f"{path}"), str(exc)
        event("lint: unreadable (exit 2)")
        return []
    event("lint: problems (exit 1)" if problems else "lint: clean (exit 0)")
    lines = raw.count(b"\n") + 2
    for problem in problems:
        assert problem.file == str(path)
        assert 1 <= problem.line <= lines and problem.column >= 1, problem
        record = problem.as_dict()
        assert record["pointer"].startswith("/") and problem.message, problem
        assert str(problem).startswith(f"{path}:{problem.line}:{problem.column}: ")
        json.dumps(record)  # machine output stays serialisable
    return problems


def check_runtime(root: Path) -> None:
    """The runtime reader (no schema) on the same catalog: only our own errors."""
    try:
        entries = read_entries(root, validate=False)
    except ArtifactsError as exc:
        event(f"runtime: {type(exc).__name__}")
        return
    names = {e.name for e in entries if isinstance(e.name, str)}
    for name in sorted(names)[:3] + ["MLCommonsResNet50"]:
        try:
            fa.load(name, root=root)  # no binaries in the copy: BinaryNotFoundError at best
        except ArtifactsError:
            pass
    try:
        fa.list_models(root=root)
    except ArtifactsError:
        pass


# crashes hypothesis found (fixed in catalog/lint.py and catalog/entries.py), kept as regressions
_ENTRY = b"  - name: A\n    family: F\n    location: furiosa/artifacts/artifacts.py\n    format: code\n"


@pytest.mark.slow  # fast tier: heavy (a fuzz run, a 1200x1200 replica or a full-size conversion)
@settings(max_examples=200, **SETTINGS)
@given(raw=catalog_bytes())
@example(raw=b"artifacts:\n" + _ENTRY + b"    version: []\n" + _ENTRY)  # unhashable version in the duplicate check
@example(raw=b'artifacts:\n  - name: A\n    family: F\n    location: "a\\0.py"\n    format: code\n')  # NUL
@example(raw=b"artifacts:\n" + _ENTRY + b"    ~: 1\n    x: 2\n")  # unknown keys of mixed types (None, str)
@example(raw=b"\x80")  # not UTF-8 (the runtime reader)
@example(raw=b"artifacts:\n" + _ENTRY + b"    metadata: {publication: {date: 2020-02-30}}\n")  # PyYAML date error
def test_mutated_catalogs_never_crash_the_lint_or_the_loader(raw, root):
    path = root / "artifacts.yaml"
    path.write_bytes(raw)
    check_lint(path, raw, OUTPUTS)
    check_runtime(root)


@settings(max_examples=40, **SETTINGS)
@given(raw=catalog_bytes())
def test_mutated_catalogs_with_the_dvc_yaml_cross_check(raw, root_with_pipeline):
    """With dvc.yaml present the lint also compares its ``artifacts:`` with the catalog: still no crash, and
    every problem names an existing file of the repository and a line."""
    path = root_with_pipeline / "artifacts.yaml"
    path.write_bytes(raw)
    try:
        problems = lint_catalog(path)
    except CatalogReadError as exc:
        assert str(exc).startswith(f"{path}"), str(exc)
        return
    for problem in problems:
        assert Path(problem.file).is_relative_to(root_with_pipeline) and Path(problem.file).is_file(), problem
        assert problem.line >= 1 and problem.column >= 1 and problem.message, problem


@settings(max_examples=150, **SETTINGS)
@given(text=st.text(st.characters(exclude_categories=("Cs",)), max_size=300))
def test_random_text_never_crashes_the_lint(text, root):
    path = root / "artifacts.yaml"
    raw = text.encode("utf-8")
    path.write_bytes(raw)
    check_lint(path, raw, OUTPUTS)
    check_runtime(root)


def test_the_real_catalog_passes_the_same_checks(root):
    raw = REAL_TEXT.encode("utf-8")
    (root / "artifacts.yaml").write_bytes(raw)  # the property tests above overwrite it
    assert check_lint(root / "artifacts.yaml", raw, OUTPUTS) == []


# --------------------------------------------------------------------------- through the command line

ENTRY = "  - name: A\n    family: F\n    location: furiosa/artifacts/artifacts.py\n    format: code\n"
CLI_CASES = {
    # lone surrogate and terminal escape sequence in a key: printed escaped, never raw, never a crash
    "surrogate-and-escape-key": 'artifacts:\n' + ENTRY + '    "\\udc80\\e[2J\\e[31mred": 1\n',
    "nul-in-location": 'artifacts:\n  - name: A\n    family: F\n    location: "a\\0b.py"\n    format: code\n',
    "nul-in-doc": 'artifacts:\n' + ENTRY + '    doc: "docs/\\0x.md"\n',
    "long-location": "artifacts:\n" + ENTRY.replace("furiosa/artifacts/artifacts.py", "a/" * 3000 + "x.py"),
    "list-as-version": "artifacts:\n" + ENTRY + "    version: [1, 2]\n" + ENTRY + "    version: [1, 2]\n",
    "mapping-key": "artifacts:\n" + ENTRY + "    ? [a, b]\n    : 1\n",
    "truncated": REAL_TEXT[: len(REAL_TEXT) // 3],
    "random-bytes": bytes(range(256)) * 2,
    "empty": "",
    "only-comment": "# nothing\n",
    "null-entry": "artifacts:\n  -\n  - 3\n  - [x]\n",
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_exit_codes_and_no_traceback(case, tmp_path):
    body = CLI_CASES[case]
    path = tmp_path / "artifacts.yaml"
    path.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
    for extra in ([], ["--json"]):
        proc = run_cli(["lint", *extra, str(path)], cwd=tmp_path, timeout=120)
        assert proc.returncode in (0, 1, 2), proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "\x1b" not in proc.stdout + proc.stderr, "terminal escapes from the catalog must not be printed raw"
        if extra:
            report = json.loads(proc.stdout)
            assert report["ok"] is (proc.returncode == 0)
        elif proc.returncode == 1:
            assert all(line.startswith(f"{path}:") for line in proc.stdout.splitlines()), proc.stdout
    if case in ("surrogate-and-escape-key", "nul-in-location", "nul-in-doc", "list-as-version", "long-location"):
        assert proc.returncode == 1


def test_cli_agrees_with_the_library_on_a_mutated_sample(tmp_path):
    """A few hypothesis-style mutations through the real console script (exit code = in-process verdict)."""
    rng = __import__("random").Random(8)
    for i in range(4):
        data = copy.deepcopy(REAL_DATA)
        entry = data["artifacts"][rng.randrange(len(data["artifacts"]))]
        key = rng.choice(sorted(entry))
        entry[rng.choice([key, key.upper(), "sha256"])] = rng.choice([1.5, None, ["x"], {"a": 1}, "\u202e", 10**30])
        if i == 3:
            entry["metadata"]["publication"]["date"] = datetime.date(2020, 2, 2)
        path = tmp_path / f"case{i}" / "artifacts.yaml"
        path.parent.mkdir()
        path.write_text(_dump(data, unicode=True, flow=False), encoding="utf-8")
        expected = 1 if lint_catalog(path) else 0
        proc = run_cli(["lint", str(path)], cwd=tmp_path, timeout=120)
        assert proc.returncode == expected and "Traceback" not in proc.stderr, proc.stdout + proc.stderr

"""`furiosa-artifacts lint`: schema + semantic checks, positions, exit codes, hostile YAML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT, run_cli
from furiosa.artifacts.catalog.lint import lint_catalog
from furiosa.artifacts.errors import CatalogReadError

GOOD_ENTRY = """\
  - name: MLCommonsResNet50
    family: ResNet
    version: "v1.5"
    location: furiosa/artifacts/artifacts.py
    format: code
"""


def write_catalog(root: Path, body: str) -> Path:
    path = root / "artifacts.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_repository_catalog_is_clean():
    assert lint_catalog(REPO_ROOT / "artifacts.yaml") == []
    proc = run_cli(["lint", str(REPO_ROOT / "artifacts.yaml")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""


def test_shipped_catalog_validates_with_plain_pyyaml_and_jsonschema():
    """The most common tooling (yaml.safe_load + jsonschema, no custom loader) accepts the shipped catalog."""
    import jsonschema

    data = yaml.safe_load((REPO_ROOT / "artifacts.yaml").read_text("utf-8"))
    schema = json.loads((REPO_ROOT / "schema" / "artifacts.schema.json").read_text("utf-8"))
    jsonschema.validate(data, schema, format_checker=jsonschema.FormatChecker())
    dates = [e["metadata"]["publication"]["date"] for e in data["artifacts"]]
    assert dates and all(isinstance(d, str) for d in dates)


def test_repository_catalog_has_the_four_seed_models():
    data = yaml.safe_load((REPO_ROOT / "artifacts.yaml").read_text())
    names = [a["name"] for a in data["artifacts"]]
    for seed in ("MLCommonsResNet50", "EfficientNetV2_S", "MLCommonsSSDResNet34", "MLCommonsSSDMobileNet"):
        assert seed in names
    assert "MLCommonsSSDMobilenet" not in names  # the alias lives in our client only
    for entry in data["artifacts"]:
        pub = entry["metadata"]["publication"]
        assert pub["url"].startswith("https://") and pub["title"] and pub["authors"] and pub["date"]
        assert isinstance(entry["version"], str)


# (catalog text, expected line:column, expected message fragment)
BAD_CATALOGS = {
    "unknown-key": ("artifacts:\n" + GOOD_ENTRY + "    sha256: abc\n", "7:5", "unknown key 'sha256'"),
    "unknown-nested-key": ("artifacts:\n" + GOOD_ENTRY + "    metadata:\n      publication:\n        doi: x\n",
                           "9:9", "unknown key 'doi'"),
    "missing-family": ("artifacts:\n  - name: A\n    location: furiosa/artifacts/artifacts.py\n    format: code\n",
                       "2:5", "missing required key 'family'"),
    "bad-format": ("artifacts:\n" + GOOD_ENTRY.replace("format: code", "format: pickle"), "6:13",
                   "use one of: code, onnx, tflite"),
    "unquoted-version": ("artifacts:\n" + GOOD_ENTRY.replace('"v1.5"', "1.10"), "4:14", 'quote it in YAML: version: "1.1"'),
    "bad-date": ("artifacts:\n" + GOOD_ENTRY + "    metadata:\n      publication:\n        date: 2020-02-30\n",
                 "9:15", "not a valid date"),
    "unquoted-date": ("artifacts:\n" + GOOD_ENTRY + "    metadata:\n      publication:\n        date: 2015-12-10\n",
                      "9:15", 'quote it: date: "2015-12-10"'),
    "bad-url": ("artifacts:\n" + GOOD_ENTRY + "    metadata:\n      publication:\n        url: javascript:alert(1)\n",
                "9:14", "must be an http(s) URL"),
    "bad-name": ("artifacts:\n" + GOOD_ENTRY.replace("name: MLCommonsResNet50", "name: resnet-50"), "2:11",
                 "must match [A-Za-z][A-Za-z0-9_]*"),
    "duplicate-entry": ("artifacts:\n" + GOOD_ENTRY + GOOD_ENTRY, "7:11", "must be unique"),
    "parent-escape": ("artifacts:\n" + GOOD_ENTRY.replace("furiosa/artifacts/artifacts.py", "../outside.py"),
                      "5:15", "relative path inside the repository"),
    "absolute-path": ("artifacts:\n" + GOOD_ENTRY.replace("furiosa/artifacts/artifacts.py", "/etc/x.py"),
                      "5:15", "relative path inside the repository"),
    "wrong-extension": ("artifacts:\n" + GOOD_ENTRY.replace("format: code", "format: onnx"), "5:15",
                        "must end in '.onnx'"),
    "missing-callable": ("artifacts:\n" + GOOD_ENTRY.replace("name: MLCommonsResNet50", "name: NotThere"), "2:11",
                         "defines no callable named 'NotThere'"),
    "missing-module": ("artifacts:\n" + GOOD_ENTRY.replace("artifacts/artifacts.py", "artifacts/nope.py"), "5:15",
                       "does not exist"),
    "missing-binary": ("artifacts:\n  - name: X\n    family: F\n    location: models/X/int8.onnx\n    format: onnx\n",
                       "4:15", "is not an output of the pipeline"),
    "missing-doc": ("artifacts:\n" + GOOD_ENTRY + "    doc: docs/nope.md\n", "7:10", "doc 'docs/nope.md' does not exist"),
    "non-mapping-root": ("- just\n- a list\n", "1:1", "root must be a mapping"),
    "no-artifacts-list": ("artifacts: {}\n", "1:12", "must be of type array"),
}


@pytest.mark.parametrize("case", sorted(BAD_CATALOGS))
def test_bad_catalog_is_rejected_with_position(case, repo_copy):
    text, where, fragment = BAD_CATALOGS[case]
    path = write_catalog(repo_copy, text)
    proc = run_cli(["lint", str(path)], cwd=repo_copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    matching = [ln for ln in lines if ln.startswith(f"{path}:{where}: ") and fragment in ln]
    assert matching, f"expected {where} '{fragment}' in:\n{proc.stdout}"
    assert re.search(r"\[/[^\]]*\]$", matching[0]), "each problem ends with its JSON pointer"


def test_every_problem_is_reported_at_once(repo_copy):
    text = ("artifacts:\n  - name: 9x\n    family: F\n    location: ../a.py\n    format: code\n    extra: 1\n"
            "  - name: Y\n    location: models/y.onnx\n    format: onnx\n")
    problems = lint_catalog(write_catalog(repo_copy, text))
    messages = " | ".join(p.message for p in problems)
    for fragment in ("must match", "relative path", "unknown key 'extra'", "missing required key 'family'",
                     "is not an output of the pipeline"):
        assert fragment in messages
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_symlink_out_of_the_repository_is_rejected(repo_copy, tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("def Evil():\n    pass\n")
    (repo_copy / "evil.py").symlink_to(outside)
    path = write_catalog(repo_copy, "artifacts:\n  - name: Evil\n    family: F\n    location: evil.py\n"
                         "    format: code\n")
    problems = lint_catalog(path)
    assert len(problems) == 1 and "outside the repository" in problems[0].message


UNREADABLE = {
    "malformed": ("artifacts: [\n", "invalid YAML"),
    "duplicate-keys": ("artifacts:\n  - name: A\n    name: B\n", "duplicate key"),
    "billion-laughs": ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
                       "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                       "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\nartifacts: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
                       "anchor '&a' is not allowed"),
    "python-tag": ("artifacts: !!python/object/apply:os.system ['echo pwned']\n", "custom YAML tag"),
    "two-documents": ("artifacts: []\n---\nartifacts: []\n", "exactly one YAML document"),
    "not-utf8": (b"artifacts:\n  - name: \xff\xfe\n", "not UTF-8"),
    "deep-nesting": ("artifacts: " + "[" * 200 + "]" * 200 + "\n", "nesting deeper than"),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_unreadable_catalog_exits_2_without_traceback(case, tmp_path):
    body, fragment = UNREADABLE[case]
    path = tmp_path / "artifacts.yaml"
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    proc = run_cli(["lint", str(path)], cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(path) in proc.stderr and fragment in proc.stderr
    with pytest.raises(CatalogReadError):
        lint_catalog(path)


def test_missing_file_and_directory_argument(tmp_path):
    proc = run_cli(["lint", str(tmp_path / "nope.yaml")], cwd=tmp_path)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = run_cli(["lint", str(REPO_ROOT)])
    assert proc.returncode == 0, proc.stderr


def test_json_output_is_machine_readable(repo_copy):
    path = write_catalog(repo_copy, "artifacts:\n" + GOOD_ENTRY + "    colour: red\n")
    proc = run_cli(["lint", "--json", str(path)], cwd=repo_copy)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert report["problems"][0] == {"file": str(path), "line": 7, "column": 5, "pointer": "/artifacts/0/colour",
                                     "message": report["problems"][0]["message"]}
    assert "colour" in report["problems"][0]["message"]


def test_help_and_usage_errors():
    proc = run_cli(["--help"])
    assert proc.returncode == 0 and "lint" in proc.stdout and "Exit codes" in proc.stdout
    proc = run_cli(["lint", "--help"])
    assert proc.returncode == 0 and "--json" in proc.stdout
    proc = run_cli(["no-such-command"])
    assert proc.returncode == 2


def test_unbuilt_pipeline_outputs_pass_with_a_note(repo_copy):
    proc = run_cli(["lint", str(repo_copy / "artifacts.yaml")], cwd=repo_copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "note:" in proc.stderr and "models/MLCommonsResNet50/int8.onnx" in proc.stderr
    assert "furiosa-artifacts build" in proc.stderr
    onnx = [a for a in yaml.safe_load((repo_copy / "artifacts.yaml").read_text())["artifacts"] if a["format"] == "onnx"]
    assert len(onnx) > 5 and f"note: {len(onnx)} binaries" in proc.stderr
    assert f"and {len(onnx) - 5} more" in proc.stderr  # a large catalog's note stays one short line


def test_onnx_entries_point_at_pipeline_outputs():
    from furiosa.artifacts.catalog.pipeline import declared_outputs

    declared = declared_outputs(REPO_ROOT)
    data = yaml.safe_load((REPO_ROOT / "artifacts.yaml").read_text())
    onnx = [a for a in data["artifacts"] if a["format"] == "onnx"]
    code = {a["name"] for a in data["artifacts"] if a["format"] == "code"}
    assert {a["name"] for a in onnx} == {f"{n}_INT8" for n in code}
    assert all(a["location"] in declared for a in onnx)


def test_lint_catches_drift_between_dvc_artifacts_and_the_catalog(repo_copy):
    dvc_yaml = repo_copy / "dvc.yaml"
    text = dvc_yaml.read_text()
    assert "path: models/MLCommonsResNet50/int8.onnx" in text
    dvc_yaml.write_text(text.replace("path: models/MLCommonsResNet50/int8.onnx", "path: models/elsewhere.onnx", 1))
    proc = run_cli(["lint", str(repo_copy / "artifacts.yaml")], cwd=repo_copy)
    assert proc.returncode == 1
    assert "dvc.yaml:" in proc.stdout and "MLCommonsResNet50" in proc.stdout, proc.stdout


def test_read_yaml_parses_once_but_hands_out_copies_and_sees_every_change(tmp_path):
    """read_yaml caches parses by content: a caller changing its result, or the file changing, is never
    seen by the next read."""
    from furiosa.artifacts.catalog.yaml_io import read_yaml

    path = tmp_path / "params.yaml"
    path.write_text("models:\n  A: {epochs: 3}\n")
    first = read_yaml(path)
    first["models"]["A"]["epochs"] = 99  # a caller editing what it got
    assert read_yaml(path) == {"models": {"A": {"epochs": 3}}}
    path.write_text("models:\n  A: {epochs: 4}\n")  # same size, new content
    assert read_yaml(path) == {"models": {"A": {"epochs": 4}}}
    path.write_text("models: [unclosed\n")
    with pytest.raises(CatalogReadError, match="invalid YAML"):
        read_yaml(path)

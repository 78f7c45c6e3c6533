"""The ``artifacts:`` section of ``dvc.yaml`` (DVC's model registry), generated from the catalog.

Every binary the pipeline builds for a catalog ``code`` entry (its int8 and fp32 ONNX files) is one
DVC artifact, named by :func:`~furiosa.artifacts.registries.names.dvc_name`::

    mlcommons-resnet50:
      path: models/MLCommonsResNet50/int8.onnx
      type: model
      desc: <catalog description> (int8 ONNX; catalog entry MLCommonsResNet50 v1.5)
      labels: [classification, int8, resnet]
      meta: {catalog: MLCommonsResNet50, version: v1.5, precision: int8}

Sources: entries from ``artifacts.yaml`` (name, family, version, description), the models the
pipeline builds from ``params.yaml`` (``models:``), the task from ``specs.yaml``. Labels describe what
the artifact *is* (task, precision, family) and never how one build was made: ``base.weights:
synthetic`` is a property of a build, recorded in its ``metrics.json`` and in ``dvc.lock`` at the
registered commit, and put in the GTO tag message by ``furiosa-artifacts release``. A label that
flipped with the build mode would make the committed ``dvc.yaml`` stale after every offline build.

GTO reads its own annotation file, by default ``artifacts.yaml``: our catalog, in another format,
which GTO rejects ("artifacts.yaml file doesn't conform to GTO format"). The generator therefore
also writes ``.gto`` (when absent) pointing GTO's ``INDEX`` elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from furiosa.artifacts.atomic import atomic_write_text
from furiosa.artifacts.catalog.yaml_io import read_yaml

from furiosa.artifacts.catalog.entries import Artifact, read_entries
from furiosa.artifacts.errors import CatalogError, CatalogReadError
from furiosa.artifacts.layout import PRECISIONS, binary_relpath
from furiosa.artifacts.registries.names import DVC_NAME_PATTERN, dvc_name

__all__ = [
    "DVC_FILE", "GTO_CONFIG", "GTO_CONFIG_TEXT", "DvcArtifact", "check_dvc_artifacts", "expected_artifacts",
    "render_section", "write_dvc_artifacts",
]

DVC_FILE = "dvc.yaml"
PARAMS_FILE = "params.yaml"
SPECS_FILE = "furiosa/artifacts/vision/specs.yaml"
GTO_CONFIG = ".gto"
ARTIFACT_TYPE = "model"
HEADER = (
    "# DVC model registry (`dvc artifacts get`, GTO tags name@vX.Y.Z / name#stage#N): generated from\n"
    "# artifacts.yaml, params.yaml and specs.yaml by `furiosa-artifacts dvc-artifacts`; edit those, not this.\n"
)
GTO_CONFIG_TEXT = (
    "# GTO (DVC model registry) settings. GTO's annotation index defaults to artifacts.yaml, which here is\n"
    "# the furiosa-registry catalog: point it at a file of its own. Artifacts are declared in dvc.yaml\n"
    "# (`furiosa-artifacts dvc-artifacts`); versions and stages are git tags (`furiosa-artifacts release`).\n"
    "INDEX: .gto-annotations.yaml\n"
    "types: [model]\n"
    "stages: [dev, staging, prod]\n"
)
_TOP_LEVEL_KEY = re.compile(r"^[^\s#]")
_ARTIFACTS_KEY = re.compile(r"^artifacts\s*:")


@dataclass(frozen=True)
class DvcArtifact:
    """One entry of dvc.yaml's ``artifacts:`` and the catalog model it stands for."""

    name: str
    path: str
    desc: str
    labels: Tuple[str, ...]
    catalog: str
    version: Optional[str]
    precision: str
    type: str = ARTIFACT_TYPE

    def as_dict(self) -> Dict[str, object]:
        """The mapping written under ``artifacts.<name>`` in dvc.yaml."""
        meta: Dict[str, object] = {"catalog": self.catalog, "version": self.version, "precision": self.precision}
        return {"path": self.path, "type": self.type, "desc": self.desc, "labels": list(self.labels), "meta": meta}


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


def _read_yaml(path: Path) -> dict:
    try:
        data = read_yaml(path, error=CatalogReadError)
    except FileNotFoundError:
        raise CatalogReadError(f"{path}: no such file") from None
    return data if isinstance(data, dict) else {}


def _tasks(root: Path) -> Dict[str, str]:
    from furiosa.artifacts.vision.specs import SPECS_PATH, read_specs

    path = root / SPECS_FILE
    return {name: spec.task for name, spec in read_specs(path if path.is_file() else SPECS_PATH).items()}


def _desc(entry: Artifact, precision: str) -> str:
    text = " ".join((entry.description or entry.name).split())
    version = f" {entry.version}" if entry.version else ""
    return f"{text} ({precision} ONNX; catalog entry {entry.name}{version})"


def expected_artifacts(root: Path) -> Dict[str, DvcArtifact]:
    """The artifacts dvc.yaml should declare, by DVC name, in catalog order (int8 then fp32).

    One per precision of each ``code`` entry the pipeline builds (a key of ``params.yaml``
    ``models:``); the ``<Name>_INT8`` onnx entries name the same int8 files and add nothing.

    Raises:
        CatalogReadError: artifacts.yaml or params.yaml is missing or not YAML.
        SpecError: specs.yaml is invalid.
        ValueError: a catalog name gives an invalid DVC name, or two binaries the same one.
    """
    root = Path(root)
    entries = read_entries(root, validate=False)
    built = _read_yaml(root / PARAMS_FILE).get("models") or {}
    tasks = _tasks(root)
    out: Dict[str, DvcArtifact] = {}
    for entry in entries:
        if entry.format != "code" or entry.name not in built:
            continue
        for precision in PRECISIONS:
            labels = tuple(dict.fromkeys(x for x in (tasks.get(entry.name), precision, _slug(entry.family)) if x))
            art = DvcArtifact(name=dvc_name(entry.name, precision), path=binary_relpath(entry.name, precision),
                              desc=_desc(entry, precision), labels=labels, catalog=entry.name,
                              version=entry.version, precision=precision)
            other = out.get(art.name)
            if other is not None:
                raise ValueError(f"{entry.name} {precision} and {other.catalog} {other.precision} both get the DVC "
                                 f"artifact name {art.name!r}: rename one of the catalog entries")
            out[art.name] = art
    return out


def render_section(artifacts: Dict[str, DvcArtifact]) -> str:
    """The ``artifacts:`` block (with its header comment) as YAML text ending in a newline."""
    body = yaml.safe_dump({"artifacts": {n: a.as_dict() for n, a in artifacts.items()}}, sort_keys=False,
                          default_flow_style=None, width=100, allow_unicode=True, indent=2)
    return HEADER + body


def _section_span(lines: List[str]) -> Optional[Tuple[int, int]]:
    """``[start, end)`` line indices of the top-level ``artifacts:`` block (header comment included)."""
    start = next((i for i, line in enumerate(lines) if _ARTIFACTS_KEY.match(line)), None)
    if start is None:
        return None
    end = next((j for j in range(start + 1, len(lines)) if _TOP_LEVEL_KEY.match(lines[j])), len(lines))
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")) and end < len(lines):
        end -= 1  # comments and blank lines right before the next key belong to that key
    header = HEADER.splitlines(keepends=True)
    if start >= len(header) and lines[start - len(header):start] == header:
        start -= len(header)
    return start, end


def updated_dvc_yaml(text: str, section: str) -> str:
    """``text`` (dvc.yaml) with its ``artifacts:`` block replaced by ``section`` (or appended).

    Everything outside the block is kept byte for byte.
    """
    lines = text.splitlines(keepends=True)
    span = _section_span(lines)
    if span is None:
        base = text if not text or text.endswith("\n") else text + "\n"
        return base + ("\n" if base.strip() else "") + section
    start, end = span
    return "".join(lines[:start]) + section + "".join(lines[end:])


def write_dvc_artifacts(root: Path) -> List[Path]:
    """Write dvc.yaml's ``artifacts:`` from the catalog, and ``.gto`` when absent; the files changed.

    Raises:
        CatalogReadError: dvc.yaml, artifacts.yaml or params.yaml cannot be read.
        CatalogError: the existing ``.gto`` points GTO at artifacts.yaml (fix it by hand).
    """
    root = Path(root)
    changed = []
    path = root / DVC_FILE
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise CatalogReadError(f"{path}: no such file") from None
    new = updated_dvc_yaml(text, render_section(expected_artifacts(root)))
    if new != text:
        atomic_write_text(path, new)
        changed.append(path)
    gto = root / GTO_CONFIG
    if not gto.exists():
        gto.write_text(GTO_CONFIG_TEXT, "utf-8")
        changed.append(gto)
    else:
        problems = gto_config_problems(root)
        if problems:
            raise CatalogError("; ".join(f"{where}: {message}" for where, message in problems))
    return changed


def gto_config_problems(root: Path) -> List[Tuple[str, str]]:
    """What is wrong with ``root/.gto`` (missing, unreadable, INDEX pointing at the catalog ...), as
    ``(location, message)`` pairs; never raises for a hostile file."""
    path = root / GTO_CONFIG
    fix = "create it with `furiosa-artifacts dvc-artifacts`"
    if not path.is_file():
        return [(GTO_CONFIG, f"missing: GTO would read artifacts.yaml (the catalog) as its index and fail; {fix}")]
    try:
        config = read_yaml(path, error=CatalogReadError) or {}
    except (OSError, CatalogReadError) as exc:
        return [(GTO_CONFIG, str(exc))]
    if not isinstance(config, dict):
        return [(GTO_CONFIG, "expected a mapping")]
    problems = []
    if str(config.get("INDEX", "artifacts.yaml")).strip("/").removeprefix("./") == "artifacts.yaml":
        problems.append((f"{GTO_CONFIG}:/INDEX", "GTO's INDEX is artifacts.yaml, the catalog, which GTO cannot "
                         "parse: set `INDEX: .gto-annotations.yaml`"))
    types = config.get("types")
    if isinstance(types, list) and ARTIFACT_TYPE not in types:
        problems.append((f"{GTO_CONFIG}:/types", f"types {types} lack '{ARTIFACT_TYPE}', the type of every "
                         "catalog artifact"))
    return problems


def check_dvc_artifacts(root: Path) -> List[Tuple[str, str]]:
    """Where dvc.yaml's ``artifacts:`` (and ``.gto``) disagree with the catalog: ``(location, message)`` pairs.

    ``location`` is ``file:/json/pointer`` (``dvc.yaml:/artifacts/mlcommons-resnet50/path``); each
    message names the catalog entry and says how to fix it. Empty when everything agrees.
    Unreadable inputs are reported as problems, not raised.
    """
    from furiosa.artifacts.catalog.pipeline import declared_outputs

    root = Path(root)
    fix = "run `furiosa-artifacts dvc-artifacts`"
    try:
        expected = expected_artifacts(root)
    except (CatalogError, ValueError) as exc:  # SpecError and CatalogReadError are ValueErrors
        return [("artifacts.yaml", f"cannot derive the DVC artifacts: {exc}")]
    try:
        declared = _read_yaml(root / DVC_FILE).get("artifacts")
    except CatalogReadError as exc:
        return [(DVC_FILE, str(exc))]
    problems: List[Tuple[str, str]] = []
    if declared is None:
        declared = {}
        if expected:
            problems.append((DVC_FILE, f"no `artifacts:` section (the DVC model registry): {fix}"))
    if not isinstance(declared, dict):
        return problems + [(f"{DVC_FILE}:/artifacts", f"must be a mapping of artifact name to fields; {fix}")]
    outputs = declared_outputs(root)
    for name, art in expected.items():
        where = f"{DVC_FILE}:/artifacts/{name}"
        what = f"{art.catalog} {art.precision} ({art.path})"
        if art.path not in outputs:
            problems.append((where, f"{what} is not an output of the pipeline (dvc.yaml stages)"))
        got = declared.get(name)
        if got is None:
            if declared:
                problems.append((where, f"missing artifact '{name}' for {what}; {fix}"))
            continue
        if not isinstance(got, dict):
            problems.append((where, f"'{name}' must be a mapping (artifact of {what}); {fix}"))
            continue
        for key, want in art.as_dict().items():
            if got.get(key) != want:
                wrong = "wrong path" if key == "path" else f"stale {key}"
                problems.append((f"{where}/{key}", f"{wrong} for {what}: {got.get(key)!r}, expected {want!r}; {fix}"))
        for key in sorted(set(got) - set(art.as_dict())):
            problems.append((f"{where}/{key}", f"unexpected key '{key}' in the artifact of {what}; {fix}"))
    by_path = {a.path: a for a in expected.values()}
    for name in declared:
        if name in expected:
            continue
        where = f"{DVC_FILE}:/artifacts/{name}"
        path = declared[name].get("path") if isinstance(declared[name], dict) else None
        hint = f" (its path is that of {by_path[path].name}, {by_path[path].catalog})" if path in by_path else ""
        if not isinstance(name, str) or not DVC_NAME_PATTERN.match(name):
            hint += f"; DVC names must match {DVC_NAME_PATTERN.pattern}"
        problems.append((where, f"extra artifact '{name}' stands for no catalog model built by the pipeline"
                         f"{hint}; {fix}"))
    return problems + gto_config_problems(root)

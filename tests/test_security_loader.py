"""Our client's trust model and path containment, against hostile catalog repositories (``load(..., root=...)``).

* ``code`` entries are served by the *installed* package (furiosa/artifacts/artifacts.py); a catalog
  whose code entry is anything else is refused with UntrustedCodeError and its module is never
  imported, unless the repository is trusted (``trust_repo=True`` or ``$FURIOSA_ARTIFACTS_TRUSTED_REPOS``).
* ``location``, ``doc``, the binary and its metrics file must stay inside the repository (``..``,
  absolute paths, symlinks out) unless the repository is trusted.

The lint's own checks of the same paths are in test_catalog_lint.py; publishing's in test_storage_publish.py
and below.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import furiosa.artifacts as fa
from conftest import REPO_ROOT
from furiosa.artifacts.errors import CatalogError, ProvenanceWarning, UnsafePathError, UntrustedCodeError
from furiosa.artifacts.loader import ENTRY_MODULE, ENV_TRUSTED, installed_entry_points, load_from_repo

pytestmark = pytest.mark.slow  # needs the built binaries (the README's main command)

BINARY = REPO_ROOT / "models" / "DigitsConvNet" / "int8.onnx"


@pytest.fixture(autouse=True)
def _built_binary():
    if not BINARY.is_file():
        pytest.fail(f"{BINARY} is not built: run the README's main command first")

EVIL_MODULE = """\
import pathlib
pathlib.Path({marker!r}).write_text("code from the catalog repository ran")

from furiosa.artifacts.loader import load_from_repo


def {name}(*, precision="int8"):
    return load_from_repo({name!r}, precision=precision)
"""


def entry(name: str, location: str, fmt: str = "code", **extra: str) -> str:
    lines = [f"  - name: {name}", "    family: Test", '    version: "v1.0"', f"    location: {location}",
             f"    format: {fmt}"] + [f"    {k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def make_repo(root: Path, *entries: str, binaries=("Evil",)) -> Path:
    root.mkdir(parents=True)
    (root / "artifacts.yaml").write_text("artifacts:\n" + "".join(entries))
    for name in binaries:
        (root / "models" / name).mkdir(parents=True)
        shutil.copyfile(BINARY, root / "models" / name / "int8.onnx")
    return root


@pytest.fixture(autouse=True)
def no_trusted_repos(monkeypatch):
    monkeypatch.delenv(ENV_TRUSTED, raising=False)


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


@pytest.fixture()
def evil_repo(tmp_path: Path, marker: Path) -> Path:
    root = make_repo(tmp_path / "evil-repo", entry("Evil", "evil.py"))
    (root / "evil.py").write_text(EVIL_MODULE.format(marker=str(marker), name="Evil"))
    return root


def _loaded_modules_from(root: Path) -> list:
    return [m.__name__ for m in list(sys.modules.values())
            if getattr(m, "__file__", None) and str(Path(m.__file__).resolve()).startswith(str(root.resolve()))]


# --------------------------------------------------------------------------- code entries


def test_foreign_code_entry_is_refused_and_never_imported(evil_repo: Path, marker: Path) -> None:
    with pytest.raises(UntrustedCodeError) as info:
        fa.load("Evil", root=evil_repo)
    message = str(info.value)
    assert "trust_repo=True" in message and ENV_TRUSTED in message and "evil.py" in message
    assert isinstance(info.value, PermissionError)
    assert not marker.exists() and _loaded_modules_from(evil_repo) == []


def test_trusted_repo_runs_its_code(evil_repo: Path, marker: Path) -> None:
    model = fa.load("Evil", root=evil_repo, trust_repo=True)
    assert marker.exists()  # the module was imported by file path ...
    assert model.name == "Evil" and model.source == BINARY.read_bytes()  # ... and read its own binary
    assert model.path == evil_repo / "models" / "Evil" / "int8.onnx"


def test_trust_from_the_environment_needs_the_absolute_path(evil_repo: Path, marker: Path, monkeypatch,
                                                            tmp_path: Path) -> None:
    for value in [os.path.relpath(evil_repo), str(tmp_path / "other-repo"), f"{tmp_path}{os.pathsep}"]:
        monkeypatch.setenv(ENV_TRUSTED, value)
        with pytest.raises(UntrustedCodeError):
            load_from_repo("Evil", root=evil_repo)
    assert not marker.exists()
    monkeypatch.setenv(ENV_TRUSTED, f"/somewhere/else{os.pathsep}{evil_repo}")
    assert load_from_repo("Evil", root=evil_repo).name == "Evil" and marker.exists()


@pytest.mark.parametrize("name,location", [
    ("MLCommonsResNet50", "evil.py"),  # one of our names, another module
    ("load_from_repo", ENTRY_MODULE),  # our module, a name that is not an entry point
    ("NewNet", ENTRY_MODULE),  # our module's path, a name the installed package does not have
])
def test_only_installed_entry_points_at_our_location_are_served(tmp_path: Path, marker: Path, name: str,
                                                                location: str) -> None:
    root = make_repo(tmp_path / "repo", entry(name, location), binaries=(name,))
    (root / "evil.py").write_text(EVIL_MODULE.format(marker=str(marker), name=name))
    module = root / ENTRY_MODULE
    module.parent.mkdir(parents=True)
    module.write_text(EVIL_MODULE.format(marker=str(marker), name=name))
    with pytest.raises(UntrustedCodeError):
        load_from_repo(name, root=root)
    assert not marker.exists() and _loaded_modules_from(root) == []


def test_known_entries_never_import_the_repository_copy_of_our_module(tmp_path: Path, marker: Path) -> None:
    """A catalog repository whose furiosa/artifacts/artifacts.py is malicious: the installed one is used."""
    root = make_repo(tmp_path / "repo", entry("DigitsConvNet", ENTRY_MODULE), binaries=("DigitsConvNet",))
    module = root / ENTRY_MODULE
    module.parent.mkdir(parents=True)
    module.write_text(EVIL_MODULE.format(marker=str(marker), name="DigitsConvNet"))
    model = fa.load("DigitsConvNet", root=root)
    assert model.source == BINARY.read_bytes() and model.path == root / "models/DigitsConvNet/int8.onnx"
    assert not marker.exists() and _loaded_modules_from(root) == []


def test_newer_catalog_checkout_with_a_new_model_loads_when_trusted(tmp_path: Path) -> None:
    """The intended use of trust: a checkout whose artifacts.py has an entry point this install lacks."""
    root = make_repo(tmp_path / "newer", entry("NewNet", ENTRY_MODULE), binaries=("NewNet",))
    module = root / ENTRY_MODULE
    module.parent.mkdir(parents=True)
    module.write_text((REPO_ROOT / ENTRY_MODULE).read_text() + textwrap.dedent('''

        def NewNet(*, precision: str = "int8") -> Model:
            """A model this installation does not know."""
            return load_from_repo("NewNet", precision=precision)
    '''))
    assert "NewNet" not in installed_entry_points()
    with pytest.raises(UntrustedCodeError):
        load_from_repo("NewNet", root=root)
    model = load_from_repo("NewNet", root=root, trust_repo=True)
    assert model.name == "NewNet" and model.path == root / "models/NewNet/int8.onnx"


def test_every_code_entry_of_our_catalog_is_an_installed_entry_point() -> None:
    import yaml

    entries = yaml.safe_load((REPO_ROOT / "artifacts.yaml").read_text())["artifacts"]
    for item in entries:
        if item["format"] == "code":
            assert item["location"] == ENTRY_MODULE and item["name"] in installed_entry_points(), item["name"]


def test_the_registry_client_by_contrast_runs_catalog_code(evil_repo: Path, marker: Path, tmp_path: Path) -> None:
    """furiosa-registry 0.5.2 imports a code entry's module from (its copy of) the repository: that is its
    design, so only point it at catalogs you trust (SECURITY.md). Our loader above never does."""
    from clients.venvs import client_python

    home = tmp_path / "registry-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(FURIOSA_REGISTRY_HOME=str(home), XDG_CACHE_HOME=str(home))
    script = ("import asyncio, sys\nfrom furiosa import registry\n"
              "try:\n    asyncio.run(registry.load(sys.argv[1], 'Evil', 'v1.0'))\nexcept Exception as exc:\n"
              "    print(type(exc).__name__)\n")
    proc = subprocess.run([str(client_python("0.5.2")), "-c", script, f"file://{evil_repo}"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize("field,value", [
    ("location", "../outside.py"), ("location", "/etc/passwd"), ("location", "a/../../b.py"),
    ("location", '"a\\\\b.py"'), ("doc", "../../etc/passwd"), ("doc", "/etc/passwd"), ("location", '"a\\0b"'),
])
def test_unsafe_catalog_paths_are_refused(tmp_path: Path, field: str, value: str) -> None:
    fields = {"location": ENTRY_MODULE, field: value}
    location = fields.pop("location")
    root = make_repo(tmp_path / "repo", entry("DigitsConvNet", location, **fields), binaries=("DigitsConvNet",))
    with pytest.raises(UnsafePathError):
        fa.load("DigitsConvNet", root=root)


def test_symlinks_out_of_the_repository_are_refused_unless_trusted(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(BINARY, outside / "int8.onnx")
    (outside / "doc.md").write_text("secret")
    (outside / "metrics.json").write_text(json.dumps({"weights": {"source": "synthetic"}}))

    root = make_repo(tmp_path / "repo", entry("DigitsConvNet", ENTRY_MODULE), binaries=())
    (root / "models" / "DigitsConvNet").mkdir(parents=True)
    binary = root / "models" / "DigitsConvNet" / "int8.onnx"
    binary.symlink_to(outside / "int8.onnx")
    with pytest.raises(UnsafePathError, match="outside the repository"):
        fa.load("DigitsConvNet", root=root)
    assert fa.load("DigitsConvNet", root=root, trust_repo=True).source == BINARY.read_bytes()

    binary.unlink()  # a symlink that stays inside is fine (e.g. DVC's symlink cache type, cache in .dvc/)
    (root / ".dvc" / "cache").mkdir(parents=True)
    shutil.copyfile(BINARY, root / ".dvc" / "cache" / "object")
    binary.symlink_to(Path("../../.dvc/cache/object"))
    assert fa.load("DigitsConvNet", root=root).source == BINARY.read_bytes()

    (root / "models" / "DigitsConvNet" / "metrics.json").symlink_to(outside / "metrics.json")
    with pytest.raises(UnsafePathError, match="metrics file"):
        fa.load("DigitsConvNet", root=root)
    (root / "models" / "DigitsConvNet" / "metrics.json").unlink()

    (root / "docs").symlink_to(outside)
    (root / "artifacts.yaml").write_text("artifacts:\n" + entry("DigitsConvNet", ENTRY_MODULE, doc="docs/doc.md"))
    with pytest.raises(UnsafePathError, match="doc"):
        fa.load("DigitsConvNet", root=root)


def test_a_hostile_entry_name_cannot_steer_the_binary_path(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", entry('"../../x"', ENTRY_MODULE), binaries=())
    with pytest.raises(CatalogError, match="must match"):
        fa.load("../../x", root=root)
    with pytest.raises(CatalogError, match="must match"):
        fa.load("x", root=root)  # loose matching finds it too: still refused


def test_publish_refuses_a_dvc_lock_output_that_leaves_the_repository(tmp_path: Path, monkeypatch) -> None:
    """storage/publish.py: an output path in dvc.lock escaping the repo (the symlink cases are in
    test_storage_publish.py)."""
    from furiosa.artifacts.storage import publish_lfs
    from test_storage_support import apply_env, run, tool_env

    if subprocess.run(["git", "lfs", "version"], capture_output=True).returncode != 0:
        pytest.skip("needs git-lfs")
    env = tool_env(tmp_path / "env")
    # a hand-made consumer: dvc.lock only, no DVC run needed for a refusal before any transfer
    root = tmp_path / "repo"
    root.mkdir()
    run(["git", "init", "-q", "-b", "main"], root, env)
    (root / "artifacts.yaml").write_text("artifacts: []\n")
    (root / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  gen:\n    cmd: x\n    outs:\n    - path: models/x/../../../evil.onnx\n"
        "      hash: md5\n      md5: 0123456789abcdef0123456789abcdef\n      size: 3\n")
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-q", "-m", "x"], root, env)
    bare = tmp_path / "published.git"
    run(["git", "init", "--bare", "-q", "-b", "main", str(bare)], tmp_path, env)
    apply_env(monkeypatch, env)
    with pytest.raises(UnsafePathError, match="evil.onnx"):
        publish_lfs(root, str(bare), progress=False)
    assert run(["git", "rev-list", "--all"], bare, env, check=False).stdout.strip() == ""


def test_a_binary_entry_loads_the_file_its_location_names_not_one_guessed_from_its_name(tmp_path: Path) -> None:
    """``load("<Name>_INT8")`` used to read ``models/<Name>_INT8/int8.onnx`` whatever the entry's location said:
    the location is what decides, and an onnx entry that is no pipeline build is refused with a clear error."""
    from furiosa.artifacts.errors import ModelNotFoundError

    fp32 = REPO_ROOT / "models" / "DigitsConvNet" / "fp32.onnx"
    root = make_repo(tmp_path / "repo", entry("DigitsConvNet", ENTRY_MODULE),
                     entry("DigitsConvNet_INT8", "models/DigitsConvNet/fp32.onnx", fmt="onnx"),
                     entry("Loose", "models/loose.onnx", fmt="onnx"), binaries=("DigitsConvNet",))
    shutil.copyfile(fp32, root / "models" / "DigitsConvNet" / "fp32.onnx")
    shutil.copyfile(fp32, root / "models" / "loose.onnx")
    with warnings.catch_warnings():  # whether the copied binary carries provenance is not this test's concern
        warnings.simplefilter("ignore", ProvenanceWarning)
        model = fa.load("DigitsConvNet_INT8", root=root)
    assert model.name == "DigitsConvNet" and model.precision == "fp32" and model.source == fp32.read_bytes()
    with pytest.raises(ModelNotFoundError, match="not a binary the pipeline builds"):
        fa.load("Loose", root=root)

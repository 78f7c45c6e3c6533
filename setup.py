"""Build hook: bundle the catalog data (artifacts.yaml, params.yaml, dvc.lock, .dvc/config) into the package.

Everything else is in pyproject.toml. See furiosa/artifacts/catalog/bundle.py for what is bundled and why.
"""

import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithCatalog(build_py):
    """``build_py`` plus ``furiosa/artifacts/_catalog/`` generated from this tree (not in editable installs,
    which read the tree itself)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        sys.path.insert(0, str(HERE))  # bundle.py imports furiosa.artifacts.atomic (standard library only)
        spec = importlib.util.spec_from_file_location("_furiosa_bundle", HERE / "furiosa/artifacts/catalog/bundle.py")
        bundle = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bundle)
        dest = Path(self.build_lib) / "furiosa" / "artifacts" / bundle.BUNDLE_DIR
        files = bundle.write_bundle(HERE, dest)
        absent = [rel for rel, digest in files.items() if digest is None]
        print(f"bundled the catalog into {dest}" + (f" (absent: {', '.join(absent)})" if absent else ""))


setup(cmdclass={"build_py": BuildPyWithCatalog})

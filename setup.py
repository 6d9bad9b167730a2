"""Build step: copy the files the tool ships (sandbox/resources.py SHIPPED) into the wheel under
sandbox/_packaged/, so the repository keeps one copy of each where the sample project uses it.
Everything else is declared in pyproject.toml."""

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from sandbox.resources import SHIPPED  # noqa: E402  (stdlib-only module)


class BuildWithShippedFiles(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "sandbox" / "_packaged"
        for name, source in SHIPPED.items():
            src, dst = ROOT / source, target / name
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildWithShippedFiles})

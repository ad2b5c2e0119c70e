"""Maps the repository's top-level folders onto sub-packages of the one import name `sysgym`.

pyproject.toml cannot list the nested packages of a `package-dir` mapping dynamically, so this small
shim walks each folder (docs/DESIGN.md: `sysgym.envs` -> `envs/`, and so on). Folders that hold only data
(`conf/env`, `kernels/data`, ...) are listed too (namespace packages), so setuptools ships their files
without warning that they are "absent from the packages configuration".

Provenance: building a wheel or an sdist writes `sysgym/_build_info.py` (the version and the commit of THIS
checkout, never of a repository around it), which result records report (`sysgym.records.build_info`). An
editable install has no such file and asks git for its own checkout at run time.
"""
import os
import subprocess
from pathlib import Path

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

SUBPACKAGES = ("envs", "agents", "solvers", "conf", "kernels", "experiments")
HERE = Path(__file__).resolve().parent
BUILD_INFO = "_build_info.py"


def _packages(folder: str) -> list[str]:
    return [p for p in find_namespace_packages(folder) if "__pycache__" not in p and not p.startswith(".")]


def _commit() -> str | None:
    """This checkout's commit (+dirty), or None outside a git checkout of its own (an unpacked sdist)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, timeout=10, check=True,
                              env=env).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != HERE:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "HEAD") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _version() -> str:
    for line in (HERE / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    return "unknown"


def _write_build_info(package_dir: Path) -> None:
    commit = _commit()
    target = package_dir / BUILD_INFO
    if commit is None and target.exists():
        return  # building from an sdist: keep the commit it was made from
    target.write_text('"""Written by setup.py when this copy of sysgym was built; read by sysgym.records."""\n'
                      f"VERSION = {_version()!r}\nCOMMIT = {commit or 'unknown'!r}\n")


class BuildPyWithInfo(build_py):
    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            _write_build_info(Path(self.build_lib) / "sysgym")


class SdistWithInfo(sdist):
    def make_release_tree(self, base_dir, files) -> None:
        super().make_release_tree(base_dir, files)
        _write_build_info(Path(base_dir) / "sysgym")


package_dir = {"sysgym": "sysgym"}
packages = ["sysgym"] + [f"sysgym.{p}" for p in _packages("sysgym")]
for folder in SUBPACKAGES:
    package_dir[f"sysgym.{folder}"] = folder
    packages.append(f"sysgym.{folder}")
    packages += [f"sysgym.{folder}.{p}" for p in _packages(folder)]

# sysgym's Hydra launcher (`hydra/launcher=sysgym_ray`): Hydra finds launchers in the `hydra_plugins`
# namespace package, which other plugins (joblib, submitit) share (it has no __init__.py).
packages += ["hydra_plugins", "hydra_plugins.sysgym_ray_launcher"]  # the first: so an editable install
# puts this folder on the namespace path, where Hydra's plugin scan (pkgutil.walk_packages) finds the second

setup(packages=packages, package_dir=package_dir, cmdclass={"build_py": BuildPyWithInfo, "sdist": SdistWithInfo})

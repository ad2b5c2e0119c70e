"""Maps the repository's top-level folders onto sub-packages of the one import name `sysgym`.

pyproject.toml cannot list the nested packages of a `package-dir` mapping dynamically, so this small
shim walks each folder (docs/DESIGN.md: `sysgym.envs` -> `envs/`, and so on). Folders that hold only data
(`conf/env`, `kernels/data`, ...) are listed too (namespace packages), so setuptools ships their files
without warning that they are "absent from the packages configuration".
"""
from setuptools import find_namespace_packages, setup

SUBPACKAGES = ("envs", "agents", "solvers", "conf", "kernels", "experiments")



def _packages(folder: str) -> list[str]:
    return [p for p in find_namespace_packages(folder) if "__pycache__" not in p and not p.startswith(".")]


package_dir = {"sysgym": "sysgym"}
packages = ["sysgym"] + [f"sysgym.{p}" for p in _packages("sysgym")]
for folder in SUBPACKAGES:
    package_dir[f"sysgym.{folder}"] = folder
    packages.append(f"sysgym.{folder}")
    packages += [f"sysgym.{folder}.{p}" for p in _packages(folder)]

setup(packages=packages, package_dir=package_dir)

"""Maps the repository's top-level folders onto sub-packages of the one import name `sysgym`.

pyproject.toml cannot list the nested packages of a `package-dir` mapping dynamically, so this small
shim walks each folder (DESIGN.md: `sysgym.envs` -> `envs/`, and so on).
"""
from setuptools import find_packages, setup

SUBPACKAGES = ("envs", "agents", "solvers", "conf", "kernels", "experiments")

package_dir = {"sysgym": "sysgym"}
packages = ["sysgym"] + [f"sysgym.{p}" for p in find_packages("sysgym")]
for folder in SUBPACKAGES:
    package_dir[f"sysgym.{folder}"] = folder
    packages.append(f"sysgym.{folder}")
    packages += [f"sysgym.{folder}.{p}" for p in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)

"""Write tests/data/digests/<family>.json: the digests of each preset's seeds 0 and 1 under every version of
the family's generator, which tests/test_conformance.py::test_pinned_digests then holds every generator to.

    python tests/pin_digests.py vm_resched [--presets tiny,small,medium]

Run it only when a family is new or a generator gained a version (an existing version must never change:
the digests it wrote before must come out again).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import sysgym
from sysgym.testing import check_generator

OUT = Path(__file__).resolve().parent / "data" / "digests"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family")
    parser.add_argument("--presets", default=None, help="comma-separated (default: every preset)")
    args = parser.parse_args()
    fam = sysgym.get_family(args.family)
    presets = tuple(args.presets.split(",")) if args.presets else tuple(fam.presets)
    versions = sorted(fam.generator.versions)
    digests: dict[str, str] = {}
    for version in versions:  # specs carry their version (`fam-v1/...`), so one mapping holds them all
        digests.update(check_generator(fam.name, presets=presets, version=version))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{fam.name}.json"
    path.write_text(json.dumps({"presets": list(presets), "versions": versions, "digests": digests}, indent=1,
                               sort_keys=True) + "\n")
    print(f"{path}: {len(digests)} digests")


if __name__ == "__main__":
    main()

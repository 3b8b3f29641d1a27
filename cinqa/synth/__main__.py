"""Command line for the generator.

    python -m cinqa.synth samples data/                  # the committed samples, every year
    python -m cinqa.synth file big.xml --year 2025-26 --children 200000 --seed 1
    python -m cinqa.synth params                         # the parameter table, as CSV
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cinqa import spec
from cinqa.synth import DEFAULT_LA, YEARS, generate_file, parameter_table, write_samples


def main(argv: list[str] | None = None) -> int:
    """Run the command named on the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m cinqa.synth", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    samples = sub.add_parser("samples", help="write the sample returns of every supported year")
    samples.add_argument("folder", type=Path)
    samples.add_argument("--children", type=int, default=300)
    samples.add_argument("--seed", type=int, default=2026)
    big = sub.add_parser("file", help="write one (large) return, streaming")
    big.add_argument("path", type=Path)
    big.add_argument("--year", default=spec.SUPPORTED_YEARS[-1], choices=YEARS)
    big.add_argument("--children", type=int, required=True)
    big.add_argument("--seed", type=int, default=0)
    big.add_argument("--la", default=DEFAULT_LA)
    sub.add_parser("params", help="print the parameter table as CSV")
    args = parser.parse_args(argv)
    if args.command == "samples":
        for path in write_samples(args.folder, children=args.children, seed=args.seed):
            print(path)
    elif args.command == "file":
        print(generate_file(args.path, args.year, args.children, seed=args.seed, la=args.la))
    else:
        parameter_table().to_csv(sys.stdout, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

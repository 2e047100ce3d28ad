"""``python -m datasets.synthetic NAME OUT``: write a synthetic image set with its manifest.

The generators and their options come from :data:`datasets.synthetic.GENERATORS`.
"""

from __future__ import annotations

import argparse
import sys

from datasets.synthetic import GENERATORS, write_dataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m datasets.synthetic",
        description="Write a seeded synthetic image set as class folders plus manifest.csv "
                    "(path, label, box columns, mask paths). Sets: "
                    + "; ".join(f"{name}: {spec.description}" for name, spec in GENERATORS.items()) + ".")
    parser.add_argument("name", choices=sorted(GENERATORS), help="which generator")
    parser.add_argument("out", help="output folder (created; existing files of the same names are replaced)")
    parser.add_argument("--n", type=int, default=600, help="number of images, balanced over classes (default 600)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    for name, spec in GENERATORS.items():
        for option in spec.options:
            parser.add_argument(f"--{option.name.replace('_', '-')}", type=option.type, default=None,
                                choices=[c for c in option.choices if c is not None] if option.choices else None,
                                help=f"{name}: {option.help} (default {option.default})")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    name, out, n, seed, size = (args.pop(key) for key in ("name", "out", "n", "seed", "size"))
    if n < 1 or size < 32:
        parser.error("--n must be >= 1 and --size >= 32")
    known = {option.name for option in GENERATORS[name].options}
    given = {key: value for key, value in args.items() if value is not None}
    foreign = sorted(set(given) - known)
    if foreign:
        parser.error(f"{', '.join('--' + k.replace('_', '-') for k in foreign)} do(es) not apply to {name}")
    try:
        manifest = write_dataset(name, out, n=n, seed=seed, size=size, **given)
    except ValueError as err:
        parser.error(str(err))
    preview = manifest.parent / "preview.png"
    print(f"Wrote {n} images and {manifest}" + (f"; a few of them: {preview}" if preview.is_file() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

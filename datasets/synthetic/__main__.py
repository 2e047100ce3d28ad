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
    shared: dict[str, list] = {}  # generators may share an option's name (thin_sections and seismic_facies: shortcut)
    for name, spec in GENERATORS.items():
        for option in spec.options:
            shared.setdefault(option.name, []).append((name, option))
    for flag, owners in shared.items():
        choices = [c for _, o in owners if o.choices for c in o.choices if c is not None]
        parser.add_argument(f"--{flag.replace('_', '-')}", type=owners[0][1].type, default=None,
                            choices=list(dict.fromkeys(choices)) or None,
                            help="; ".join(f"{name}: {o.help} (default {o.default})" for name, o in owners))
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

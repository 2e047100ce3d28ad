"""``python -m datasets.synthetic NAME OUT``: write a synthetic image set with its manifest."""

from __future__ import annotations

import argparse
import sys

from datasets.synthetic import GENERATORS, thin_sections, write_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datasets.synthetic",
        description="Write a seeded synthetic image set as class folders plus manifest.csv "
                    "(path, label, box columns, mask paths).")
    parser.add_argument("name", choices=sorted(GENERATORS), help="which generator")
    parser.add_argument("out", help="output folder (created; existing files of the same names are replaced)")
    parser.add_argument("--n", type=int, default=600, help="number of images, balanced over classes (default 600)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--max-clasts", type=int, default=1,
                        help="sigma_clasts: up to this many clasts per image (default 1)")
    parser.add_argument("--shortcut", choices=thin_sections.SHORTCUTS, default="none",
                        help="thin_sections: plant a class-correlated scale bar (default none)")
    parser.add_argument("--correlation", type=float, default=0.9,
                        help="thin_sections: share of images whose scale bar style follows the class (default 0.9)")
    parser.add_argument("--rock", choices=thin_sections.CLASSES,
                        help="thin_sections: draw this rock type for every class, so only the shortcut "
                             "separates the classes (an audit's positive control)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.size < 32:
        parser.error("--n must be >= 1 and --size >= 32")
    if not 0.0 <= args.correlation <= 1.0:
        parser.error("--correlation must lie in [0, 1]")
    options = ({"max_clasts": args.max_clasts} if args.name == "sigma_clasts"
               else {"shortcut": args.shortcut, "correlation": args.correlation, "rock": args.rock})
    manifest = write_dataset(args.name, args.out, n=args.n, seed=args.seed, size=args.size, **options)
    print(f"Wrote {args.n} images and {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The best test R² a model can hope for on the synthetic SEM lots, per image.

Each image shows its lot's pitting and cracks only as drawn, so a model that read the exact
pit and crack areas of every image would still miss what drawing adds (counts within 15 % of
the lot's densities, pits and cracks cut at crystal edges). This script fits a linear model of
CPS on the exact areas, read from the generator's masks, cross-validated by lot (5 folds, no
lot in two folds): the ceiling beside which a trained regressor's test R² is read.

The last line is a JSON object with ``ceiling_r2`` (per image), ``ceiling_r2_lot_means`` (the
lots' mean areas against their CPS), and the set's size.

    python benchmarks/sem_ceiling.py [--images 1000] [--lots 200] [--size 96]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.console import quiet_command  # noqa: E402

if __name__ == "__main__":
    quiet_command()

import pandas as pd  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.model_selection import GroupKFold, cross_val_predict  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402

from datasets.images import read_image  # noqa: E402
from datasets.synthetic import write_dataset  # noqa: E402


def mask_areas(folder: Path, table: pd.DataFrame) -> pd.DataFrame:
    """Each image's pit and crack area (fractions of the image), read from its masks."""
    area = {column: [float((read_image(folder / path)[..., 0] > 127).mean()) for path in table[column]]
            for column in ("pit_mask", "crack_mask")}
    return table.assign(pit_area=area["pit_mask"], crack_area=area["crack_mask"])


def ceiling(table: pd.DataFrame, folds: int = 5) -> tuple[float, float]:
    """Cross-validated R² of the linear fit, per image and over the lots' means."""
    features, target = table[["pit_area", "crack_area"]].to_numpy(), table["cps"].to_numpy()
    predicted = cross_val_predict(LinearRegression(), features, target, groups=table["lot"],
                                  cv=GroupKFold(min(folds, table["lot"].nunique())))
    means = table.assign(predicted=predicted).groupby("lot")[["cps", "predicted"]].mean()
    return float(r2_score(target, predicted)), float(r2_score(means["cps"], means["predicted"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--lots", type=int, default=200)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        manifest = write_dataset("sem_crystals", folder, n=args.images, seed=args.seed, size=args.size, lots=args.lots)
        per_image, per_lot = ceiling(mask_areas(Path(folder), pd.read_csv(manifest)))
    print(f"Linear fit on the exact pit and crack areas, cross-validated by lot: R² {per_image:.3f} per image, "
          f"{per_lot:.3f} over the lots' means")
    print(json.dumps({"ceiling_r2": round(per_image, 4), "ceiling_r2_lot_means": round(per_lot, 4),
                      "images": args.images, "lots": args.lots, "size": args.size}))


if __name__ == "__main__":
    main()

"""Image decoding through OpenCV: any of RGB, RGBA, grayscale, 16-bit, float and TIFF to RGB uint8.

Everything downstream (models, explainers, overlays) sees one format: an RGB ``uint8`` array of
shape (H, W, 3). Decoding goes through ``np.fromfile`` + ``cv2.imdecode`` so that paths with
non-ASCII characters work on every platform.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".jp2", ".pbm", ".pgm",
                    ".ppm", ".pnm", ".pfm", ".hdr", ".pic", ".sr", ".ras")  # what OpenCV >= 4.11 decodes

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # errors only: a corrupt file is reported once, by us, in bad_files.csv


class UnreadableImageError(ValueError):
    """Raised when a file cannot be decoded as an image; the message is the reason."""


Item = TypeVar("Item")


def read_each(items: Iterable[Item], bad: list[dict], path_of: Callable[[Item], str] = lambda item: item.path,
              read: Callable[[Item], object] | None = None) -> Iterator[tuple[Item, object]]:
    """Yields ``(item, decoded)`` for every item whose image can be read; each unreadable one is
    appended to ``bad`` as ``{"path", "reason"}`` (the rows of a ``bad_files.csv``) and skipped.

    Args:
        read: decodes one item (default: :func:`read_image` of its path); raises
            :class:`UnreadableImageError` for a file to skip.
    """
    for item in items:
        try:
            decoded = read(item) if read is not None else read_image(path_of(item))
        except UnreadableImageError as err:
            bad.append({"path": path_of(item), "reason": str(err)})
            continue
        yield item, decoded


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as RGB uint8 (H, W, 3).

    Grayscale is replicated to three channels, alpha is dropped, 16-bit and float images are
    scaled to 8 bits.

    Raises:
        UnreadableImageError: the file is missing, empty, truncated or not an image.
    """
    return _to_rgb_uint8(decode_file(path))


def decode_file(path: str | os.PathLike, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """Decodes an image file with OpenCV ``flags``, as stored (any depth and channels by default).

    OpenCV reads the size from the header before it decodes and refuses more than
    ``CV_IO_MAX_IMAGE_PIXELS`` (2^30 by default), so a decompression bomb costs nothing.

    Raises:
        UnreadableImageError: the file is missing, empty, truncated, a symbolic-link loop, not an
            image, or claims more pixels than OpenCV decodes.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise UnreadableImageError(f"cannot be read: {err.strerror or err}") from err
    if data.size == 0:
        raise UnreadableImageError("empty file (0 bytes)")
    try:
        image = cv2.imdecode(data, flags)
    except cv2.error as err:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(err):
            raise UnreadableImageError(
                "its header claims more pixels than OpenCV decodes (CV_IO_MAX_IMAGE_PIXELS, 2^30 by default): "
                "a decompression bomb or a corrupt header; refused without decoding") from err
        raise UnreadableImageError(f"cannot be decoded: {str(err).strip().splitlines()[-1]}") from err
    if image is None or image.size == 0:
        raise UnreadableImageError("cannot be decoded: corrupt, truncated or not an image")
    return image


def _to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = _to_uint8(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise UnreadableImageError(f"unsupported number of channels: {channels}")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image // 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        scale = 255.0 if np.nanmax(image) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(image) * scale, 0, 255).astype(np.uint8)
    return cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX, dtype=cv2.CV_8U)


def read_mask(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Reads a mask as a boolean (H, W) array, resized with nearest neighbour to ``size`` (H, W)."""
    mask = read_image(path)[..., 0] > 127
    return mask if size is None else resize_mask(mask, size)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes a boolean mask to ``size`` (H, W) with nearest neighbour: never blurred."""
    if mask.shape == tuple(size):
        return mask
    return cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST) > 0


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Writes an RGB (or single-channel) uint8 image; the format follows the file extension."""
    path = Path(path)
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(path.suffix, bgr)
    if not ok:
        raise ValueError(f"OpenCV cannot encode {path.suffix!r} images: {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded.tofile(str(path))


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resizes to a square ``size`` x ``size``; area interpolation when shrinking, linear otherwise."""
    shrinking = image.shape[0] > size or image.shape[1] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)

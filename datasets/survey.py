"""A whole 3D SEG-Y survey processed line by line into a SEG-Y volume of the same geometry.

Salt probability or an explanation computed for every inline (or crossline) of a survey is
written as a SEG-Y cube with the survey's own text, binary and trace headers (samples as IEEE
floats), so an interpreter loads it beside the seismic in OpendTect or Petrel. One line is held
in memory at a time. The volume is written to ``OUT.partial`` with a record of the finished
lines in ``OUT.partial.json``; a killed run started again with the same source, direction and
``signature`` (what was computed: the model and its settings) goes on with the lines not done,
and ``OUT`` appears only when every line is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from datasets.images import UnreadableImageError
from datasets.seismic import SegyHeaders

DIRECTIONS = ("inline", "crossline")


def map_survey(source: str | os.PathLike, out: str | os.PathLike, compute: Callable[[np.ndarray], np.ndarray],
               signature: str, along: str = "inline", headers: SegyHeaders = SegyHeaders(),
               verbose: bool = True) -> Path:
    """Writes ``compute(section)`` for every line of the cube ``source`` into the SEG-Y ``out``.

    Args:
        compute: maps a (samples, traces) section to an array of the same shape.
        signature: what ``compute`` is; a partial volume of another signature is started over.
        along: ``inline`` or ``crossline``: the direction of the sections.
        verbose: a progress bar over the lines.

    Raises:
        UnreadableImageError: ``source`` is not a readable SEG-Y cube (a 2D line, one inline or
            crossline, or traces whose geometry cannot be inferred), with what to do instead.
    """
    import segyio

    if along not in DIRECTIONS:
        raise ValueError(f"along={along!r} is not one of {DIRECTIONS}")
    out = Path(out)
    partial, record = out.with_name(out.name + ".partial"), out.with_name(out.name + ".partial.json")
    with _open_cube(source, headers) as cube:
        lines = [int(n) for n in (cube.ilines if along == "inline" else cube.xlines)]
        state = {"source": str(Path(source).resolve()), "size": os.path.getsize(source),
                 "mtime": os.path.getmtime(source), "along": along, "signature": signature}
        done = _resumable(partial, record, state)
        if done is None:
            _create_like(cube, partial)
            done = []
        bar = _progress_bar(len(lines), along, len(done)) if verbose else None
        with segyio.open(str(partial), "r+", iline=headers.iline, xline=headers.xline) as volume:
            source_lines, target_lines = ((cube.iline, volume.iline) if along == "inline"
                                          else (cube.xline, volume.xline))
            for number in [n for n in lines if n not in set(done)]:
                section = np.asarray(source_lines[number], np.float32).T
                target_lines[number] = np.ascontiguousarray(np.asarray(compute(section), np.float32).T)
                volume.flush()
                done.append(number)
                _write_json(record, {**state, "done": done})
                if bar:
                    bar.update(len(done))
    partial.replace(out)
    record.unlink()
    return out


def _progress_bar(lines: int, along: str, done: int):
    import keras

    bar = keras.utils.Progbar(lines, unit_name=along)
    bar.update(done)
    return bar


def _open_cube(source: str | os.PathLike, headers: SegyHeaders):
    import segyio

    try:
        cube = segyio.open(str(source), iline=headers.iline, xline=headers.xline, strict=False)
    except (OSError, RuntimeError, ValueError) as err:
        raise UnreadableImageError(f"is not a readable SEG-Y file ({err})") from err
    if cube.unstructured or len(cube.ilines) < 2 or len(cube.xlines) < 2:
        what = ("its traces' geometry cannot be inferred (unsorted or missing traces)" if cube.unstructured else
                f"it holds {len(cube.ilines)} inline(s) and {len(cube.xlines)} crossline(s)")
        cube.close()
        raise UnreadableImageError(f"is not a 3D cube: {what}; predict or explain it as one section with --section "
                                   "(or --sections) instead of --cube")
    return cube


def _resumable(partial: Path, record: Path, state: dict) -> list[int] | None:
    """The lines already written to ``partial`` by a run of the same ``state``; None to start over."""
    if not (partial.is_file() and record.is_file()):
        return None
    try:
        saved = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if {k: saved.get(k) for k in state} != state:
        return None
    print(f"Resuming {partial}: {len(saved['done'])} line(s) already written", flush=True)
    return [int(n) for n in saved["done"]]


def _create_like(cube, path: Path) -> None:
    """A SEG-Y file of ``cube``'s geometry and headers, IEEE floats, every trace zero."""
    import segyio

    spec = segyio.tools.metadata(cube)
    spec.format = int(segyio.SegySampleFormat.IEEE_FLOAT_4_BYTE)
    zeros = np.zeros(len(cube.samples), np.float32)
    with segyio.create(str(path), spec) as volume:
        volume.text[0] = cube.text[0]
        volume.bin = cube.bin
        volume.bin.update(format=spec.format)
        volume.header = cube.header
        for index in range(cube.tracecount):
            volume.trace[index] = zeros


def _write_json(path: Path, value: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value))
    temporary.replace(path)

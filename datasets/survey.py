"""A whole 3D SEG-Y survey processed line by line into a SEG-Y volume of the same geometry.

Salt probability or an explanation computed for every inline (or crossline) of a survey is
written as a SEG-Y cube with the survey's own text, binary and trace headers (samples as IEEE
floats), so an interpreter loads it beside the seismic in OpendTect or Petrel. One line is held
in memory at a time. The volume is written to ``OUT.partial`` with a record of the finished
lines in ``OUT.partial.json``; a killed run started again with the same source, direction and
``signature`` (what was computed: the model and its settings) goes on with the lines not done,
and ``OUT`` appears only when every line is written.

Several processes, on machines that share the output's folder, can split one survey: share
``i`` of ``n`` computes every ``n``-th line from the ``i``-th and records them in
``OUT.partial.i-of-n.json``; all write their lines into the one partial volume (disjoint
traces), which share 0 creates and, once every share's record is complete, renames to ``OUT``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from datasets.images import UnreadableImageError
from datasets.seismic import SegyHeaders

DIRECTIONS = ("inline", "crossline")


def map_survey(source: str | os.PathLike, out: str | os.PathLike, compute: Callable[[np.ndarray], np.ndarray],
               signature: str, along: str = "inline", headers: SegyHeaders = SegyHeaders(),
               verbose: bool = True, share: tuple[int, int] = (0, 1), poll_seconds: float = 2.0) -> Path:
    """Writes ``compute(section)`` for every line of the cube ``source`` into the SEG-Y ``out``.

    Args:
        compute: maps a (samples, traces) section to an array of the same shape.
        signature: what ``compute`` is; a partial volume of another signature is started over.
        along: ``inline`` or ``crossline``: the direction of the sections.
        verbose: a progress bar over the lines.
        share: ``(index, count)``: this process's share of the lines (see the module docstring);
            share 0 waits for the others, checking every ``poll_seconds``, and writes ``out``.

    Raises:
        UnreadableImageError: ``source`` is not a readable SEG-Y cube (a 2D line, one inline or
            crossline, or traces whose geometry cannot be inferred), with what to do instead.
    """
    import segyio

    if along not in DIRECTIONS:
        raise ValueError(f"along={along!r} is not one of {DIRECTIONS}")
    index, count = share
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    with _open_cube(source, headers) as cube:
        lines = [int(n) for n in (cube.ilines if along == "inline" else cube.xlines)]
        state = {"source": str(Path(source).resolve()), "size": os.path.getsize(source),
                 "mtime": os.path.getmtime(source), "along": along, "signature": signature, "shares": count}
        records = [_record_path(out, i, count) for i in range(count)]
        if index == 0 and _resumable(partial, records[0], state) is None:
            _create_like(cube, partial)
            _write_json(records[0], {**state, "done": []})
        elif index:
            _wait_for(lambda: _resumable(partial, records[0], state, quiet=True) is not None,
                      f"share 0 to create {partial}", poll_seconds)
        mine = lines[index::count]
        done = sorted(set(_resumable(partial, records[index], state) or []) & set(mine))
        bar = _progress_bar(len(mine), along, len(done)) if verbose else None
        with segyio.open(str(partial), "r+", iline=headers.iline, xline=headers.xline) as volume:
            source_lines, target_lines = ((cube.iline, volume.iline) if along == "inline"
                                          else (cube.xline, volume.xline))
            finished = set(done)
            for number in [n for n in mine if n not in finished]:
                section = np.asarray(source_lines[number], np.float32).T
                target_lines[number] = np.ascontiguousarray(np.asarray(compute(section), np.float32).T)
                volume.flush()
                done.append(number)
                _write_json(records[index], {**state, "done": done})
                if bar:
                    bar.update(len(done))
    if index:
        print(f"Share {index}/{count}: {len(mine)} {along}(s) written into {partial}; share 0 writes {out} when every "
              "share is done.", flush=True)
        return partial
    _wait_for(lambda: all(set(lines[i::count]) <= set(_resumable(partial, records[i], state, quiet=True) or [])
                          for i in range(1, count)), f"the other {count - 1} share(s)", poll_seconds)
    partial.replace(out)
    for record in records:
        record.unlink()
    return out


def parse_share(text: str) -> tuple[int, int]:
    """``INDEX/COUNT`` (e.g. ``1/4``) as ``(1, 4)``.

    Raises:
        argparse.ArgumentTypeError: not two whole numbers with 0 <= INDEX < COUNT.
    """
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write INDEX/COUNT, e.g. 0/2 and 1/2 for two processes") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"{text!r}: INDEX runs from 0 to COUNT - 1")
    return index, count


def add_share_argument(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--share INDEX/COUNT`` for a command that maps a survey with :func:`map_survey`."""
    parser.add_argument("--share", type=parse_share, default=(0, 1), metavar="INDEX/COUNT",
                        help=f"with --cube: {verb} every COUNT-th line from the INDEX-th, so COUNT processes (on "
                             "machines sharing the --out folder) split the survey; share 0 writes the volume once "
                             "every share is done (default 0/1: all lines)")


def _record_path(out: Path, index: int, count: int) -> Path:
    suffix = ".partial.json" if count == 1 else f".partial.{index}-of-{count}.json"
    return out.with_name(out.name + suffix)


def _wait_for(ready: Callable[[], bool], what: str, poll_seconds: float) -> None:
    if ready():
        return
    print(f"Waiting for {what} ...", flush=True)
    while not ready():
        time.sleep(poll_seconds)


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


def _resumable(partial: Path, record: Path, state: dict, quiet: bool = False) -> list[int] | None:
    """The lines already written to ``partial`` by a run of the same ``state``; None to start over."""
    if not (partial.is_file() and record.is_file()):
        return None
    try:
        saved = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if {k: saved.get(k) for k in state} != state:
        return None
    if saved["done"] and not quiet:
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

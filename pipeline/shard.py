"""`trident run --shard I/N`: node I of N takes every N-th source of one shared camera list.

Sources are dealt round-robin by their position in the list (after file
patterns are expanded), so N nodes given the same config and `--shard 1/N` ..
`--shard N/N` cover every source exactly once, and a stream keeps its name and
output files on whichever node runs it. Per-stream state (decoder, tracker,
zones) never leaves its node; only inference is pooled (Triton).
"""

from __future__ import annotations

import re
from typing import Sequence, TypeVar

from pipeline.errors import TridentError

T = TypeVar("T")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """'2/3' -> (2, 3); I counts from 1, like the shard options of pytest-shard and Jest."""
    match = _SHARD.match(text or "")
    index, count = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not match or count < 1 or not 1 <= index <= count:
        raise TridentError(f"--shard {text!r} must be I/N with 1 <= I <= N, e.g. --shard 1/3 on the first of three nodes")
    return index, count


def select_shard(sources: Sequence[T], index: int, count: int) -> list[T]:
    """Every count-th source starting at position index-1; a shard with no source is an error naming the sizes."""
    mine = [s for i, s in enumerate(sources) if i % count == index - 1]
    if not mine:
        raise TridentError(f"--shard {index}/{count} gets no source: the config lists {len(sources)}; use N <= {len(sources)}")
    return mine

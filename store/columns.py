"""Column containers the store encoders understand besides plain sequences.

:class:`DictColumn` is a dictionary-coded ``String`` column: a table of
distinct values and one int32 code per row. Ingest builds ``metric_scalars``'
experiment, run id, metric name and writer id this way, so a batch's repeated
strings are held, and encoded into the insert, once each
(:mod:`store.blocks`). Numeric columns travel as numpy arrays.

Imports numpy: only ingest and the insert path import this module (the SDK's
logging path never does).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np
import numpy.typing as npt

__all__ = ["DictColumn"]


class DictColumn(Sequence[str]):
    """A ``String`` column as a table of distinct ``values`` and one code per row (``values[codes[i]]``).

    A plain ``Sequence[str]`` to code that iterates it; :mod:`store.blocks`
    writes each distinct value once, then repeats it run by run.
    """

    __slots__ = ("values", "codes")

    def __init__(self, values: Sequence[str], codes: npt.NDArray[np.int32]) -> None:
        self.values = values
        self.codes = codes

    def __len__(self) -> int:
        return len(self.codes)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> DictColumn: ...

    def __getitem__(self, i: int | slice) -> str | DictColumn:
        if isinstance(i, slice):
            return DictColumn(self.values, self.codes[i])
        return self.values[int(self.codes[i])]

    def __iter__(self) -> Iterator[str]:
        values = self.values
        return iter([values[c] for c in self.codes.tolist()])

    def __repr__(self) -> str:
        return f"DictColumn({len(self.values)} values, {len(self.codes)} rows)"

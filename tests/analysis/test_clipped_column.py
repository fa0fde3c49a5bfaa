"""messages.clipped: NaN where the method does not clip (schema 3), so a plain mean skips it; a
schema-2 trace's 255 is read as NaN too."""

from __future__ import annotations

import numpy as np

from byzmpi.analysis.load import table_frame
from byzmpi.trace import MESSAGE_DTYPE


def test_legacy_255_is_read_as_not_applicable():
    legacy = np.dtype([(n, "u1" if n == "clipped" else MESSAGE_DTYPE[n]) for n in MESSAGE_DTYPE.names])
    rows = np.zeros(4, legacy)
    rows["clipped"] = [0, 1, 255, 1]
    df = table_frame(rows, "messages")
    assert df["clipped"].isna().tolist() == [False, False, True, False]
    assert df["clipped"].mean() == 2 / 3  # the rows that were not clipping-applicable do not count


def test_current_schema_stores_floats_with_nan():
    assert MESSAGE_DTYPE["clipped"] == np.dtype("f4")
    rows = np.zeros(3, MESSAGE_DTYPE)
    rows["clipped"] = [1.0, np.nan, 0.0]
    assert table_frame(rows, "messages")["clipped"].mean() == 0.5

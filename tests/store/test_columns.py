import numpy as np

from store.columns import DictColumn


def test_dict_column_is_a_sequence_of_its_values():
    col = DictColumn(["a", "bb"], np.array([0, 1, 1, 0], dtype=np.int32))
    assert len(col) == 4 and list(col) == ["a", "bb", "bb", "a"] and col[1] == "bb" and col[-1] == "a"
    part = col[1:3]
    assert isinstance(part, DictColumn) and list(part) == ["bb", "bb"] and part.values is col.values
    assert "2 values, 4 rows" in repr(col)

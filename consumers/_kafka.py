"""kafka-python, imported once with its import-time deprecation warning silenced.

kafka-python 3.0.12 reads its protocol files with ``importlib.resources.read_text``,
deprecated on Python 3.11; that warning is noise for runstream users and an error
under the test suite's ``filterwarnings = error``.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read_text|open_text) is deprecated", DeprecationWarning)
    import kafka
    import kafka.admin
    import kafka.errors
    import kafka.structs

__all__ = ["kafka"]

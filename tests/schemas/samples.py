"""One valid sample record of every event type, shared by the contract tests."""

from __future__ import annotations

import math
from array import array

from schemas import (
    Column,
    FileChunk,
    Heartbeat,
    ImageLogged,
    ListLogged,
    LogBatch,
    LogLine,
    PropertiesSet,
    RowLogged,
    RunStarted,
    RunStatusChanged,
    ScalarBatch,
    TableLogged,
    TagsSet,
)
from schemas.packing import split_planes

ENVELOPE = dict(writer_id="0123456789abcdef", seq=7, run_id="run_1", experiment="mnist-sweep", created_ms=1_764_300_000_000)

SAMPLES = [
    RunStarted(**ENVELOPE, parent_run_id="run_0", display_name="lr=0.1", kind="child",
               tags={"team": "vision", "valueless": None}, properties={"lr": "0.1"}, host="node-1", pid=4242),
    RunStatusChanged(**ENVELOPE, status="Failed", error_details="Traceback ...\nValueError: boom"),
    Heartbeat(**ENVELOPE, interval_ms=30_000),
    TagsSet(**ENVELOPE, tags={"stage": "fine-tune", "flag": None}),
    PropertiesSet(**ENVELOPE, properties={"git_sha": "abc123"}),
    ScalarBatch(**ENVELOPE, names=["loss", "Category"], descriptions=["training loss", ""],
                name_idx=[0, 0, 0, 1], steps=[0, 1, 2, 0], times_ms=[1, 2, 3, 4],
                values=[math.inf, -math.inf, 0.25, math.nan], text_pos=[3], text_values=["Red"]),
    # The same points as the SDK writes them (schema version 2, packed columns).
    ScalarBatch(**ENVELOPE, names=["loss", "Category"], descriptions=["training loss", ""],
                packed_name_idx=array("i", [0, 0, 0, 1]).tobytes(),
                packed_steps=split_planes(array("q", [0, 1, 2, 0]).tobytes(), 8),
                packed_times=split_planes(array("d", [0.001, 0.002, 0.003, 0.004]).tobytes(), 8),
                packed_values=array("d", [math.inf, -math.inf, 0.25, math.nan]).tobytes(),
                text_pos=[3],
                text_values=["Red"]),
    ListLogged(**ENVELOPE, name="accuracies", description="", values=Column("accuracies", [0.5, 0.75, math.nan], [2], ["n/a"])),
    RowLogged(**ENVELOPE, name="xy", description="", columns=[Column("x", [1.0]), Column("y", [2.5])]),
    TableLogged(**ENVELOPE, name="confusion", description="cm",
                columns=[Column("label", [math.nan, math.nan], [0, 1], ["cat", "dog"]), Column("count", [3.0, 4.0])]),
    ImageLogged(**ENVELOPE, name="roc", description="ROC curve", file_path="images/roc/1.png", content_type="image/png", size=1234),
    FileChunk(**ENVELOPE, path="outputs/model.bin", upload_id="u1", chunk_index=0, chunk_count=1, total_size=3,
              sha256="00" * 32, content_type="application/octet-stream", data=b"\x00\x01\x02"),
    LogBatch(**ENVELOPE, lines=[LogLine(1, "stdout", "", 20, "epoch 1"),
                                LogLine(2, "logging", "train", 40, "bad batch", "Traceback ...")]),
]

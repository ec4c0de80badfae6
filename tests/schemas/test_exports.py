import schemas
import schemas.codec
import schemas.errors
import schemas.limits
import schemas.records
import schemas.spool


def test_public_names_are_pinned():
    assert sorted(schemas.__all__) == sorted(
        ["MARKER", "MAX_MESSAGE_BYTES", "encode", "decode", "fingerprint_of", "writer_schemas", "RunLimits",
         "PipelineError", "ContractError", "EncodeError", "DecodeError", "EVENT_TYPES", "RUN_STATUSES",
         "FINAL_STATUSES", "Column", "LogLine", "Event", "RunStarted", "RunStatusChanged", "Heartbeat", "TagsSet",
         "PropertiesSet", "ScalarBatch", "ListLogged", "RowLogged", "TableLogged", "ImageLogged", "FileChunk",
         "LogBatch"]
    )
    for module in (schemas, schemas.codec, schemas.errors, schemas.limits, schemas.records, schemas.spool):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_error_tree_is_rooted_and_flags_retriable():
    from consumers.errors import ConfigError, InvalidEvent, RunLimitExceeded, SinkError, SourceError
    from producers.errors import InvalidLogCall, InvalidValueType, TransportError

    for cls in (schemas.DecodeError, InvalidLogCall, InvalidValueType, TransportError, InvalidEvent, RunLimitExceeded, SinkError, SourceError, ConfigError):
        assert issubclass(cls, schemas.PipelineError)
    assert issubclass(InvalidLogCall, ValueError) and issubclass(InvalidValueType, TypeError)
    assert TransportError.retriable and SinkError.retriable and SourceError.retriable
    assert not schemas.DecodeError.retriable and not InvalidEvent.retriable

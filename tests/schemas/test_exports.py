import schemas
import schemas.codec
import schemas.errors
import schemas.limits
import schemas.records
import schemas.settings
import schemas.spool


def test_public_names_are_pinned():
    assert sorted(schemas.__all__) == sorted(
        ["MARKER", "MAX_MESSAGE_BYTES", "encode", "decode", "fingerprint_of", "writer_schemas", "RunLimits",
         "PipelineError", "ContractError", "EncodeError", "DecodeError", "EVENT_TYPES", "RUN_STATUSES",
         "FINAL_STATUSES", "Column", "LogLine", "Event", "RunStarted", "RunStatusChanged", "Heartbeat", "TagsSet",
         "PropertiesSet", "ScalarBatch", "ListLogged", "RowLogged", "TableLogged", "ImageLogged", "FileChunk",
         "LogBatch"]
    )
    for module in (schemas, schemas.codec, schemas.errors, schemas.limits, schemas.records, schemas.settings,
                   schemas.spool):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_error_tree_is_rooted_and_flags_retriable():
    from consumers.errors import DeadLetterError, InvalidEvent, RunLimitExceeded, SourceError
    from producers.errors import InvalidLogCall, InvalidValueType, TransportError
    from schemas.errors import ConfigurationError
    from store.errors import OwnerUnavailable, RunNotFound, StoreBusy, StoreError

    for cls in (schemas.DecodeError, InvalidLogCall, InvalidValueType, TransportError, InvalidEvent, RunLimitExceeded,
                DeadLetterError, SourceError, ConfigurationError, StoreError, StoreBusy, OwnerUnavailable, RunNotFound):
        assert issubclass(cls, schemas.PipelineError)
    assert issubclass(InvalidLogCall, ValueError) and issubclass(InvalidValueType, TypeError)
    assert issubclass(ConfigurationError, ValueError) and issubclass(RunNotFound, LookupError)
    assert TransportError.retriable and DeadLetterError.retriable and SourceError.retriable
    assert StoreError("down").retriable and not StoreError("bad row", retriable=False).retriable
    assert not schemas.DecodeError.retriable and not InvalidEvent.retriable and not ConfigurationError.retriable

import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamPosition(_message.Message):
    __slots__ = ("epoch", "seq")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    epoch: str
    seq: int
    def __init__(self, epoch: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("resume", "max_rate_hz")
    RESUME_FIELD_NUMBER: _ClassVar[int]
    MAX_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    resume: StreamPosition
    max_rate_hz: float
    def __init__(self, resume: _Optional[_Union[StreamPosition, _Mapping]] = ..., max_rate_hz: _Optional[float] = ...) -> None: ...

class PnlEvent(_message.Message):
    __slots__ = ("epoch", "seq", "prev_seq", "ts", "snapshot", "delta")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PREV_SEQ_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    epoch: str
    seq: int
    prev_seq: int
    ts: _timestamp_pb2.Timestamp
    snapshot: Snapshot
    delta: Delta
    def __init__(self, epoch: _Optional[str] = ..., seq: _Optional[int] = ..., prev_seq: _Optional[int] = ..., ts: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., delta: _Optional[_Union[Delta, _Mapping]] = ...) -> None: ...

class Delta(_message.Message):
    __slots__ = ("patch",)
    PATCH_FIELD_NUMBER: _ClassVar[int]
    patch: _struct_pb2.Struct
    def __init__(self, patch: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("as_of", "currency", "net_pnl", "trading", "revenue", "costs", "gross_margin_pct", "change", "agents", "sources")
    class AgentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Agent
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Agent, _Mapping]] = ...) -> None: ...
    class SourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SourceState
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SourceState, _Mapping]] = ...) -> None: ...
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    NET_PNL_FIELD_NUMBER: _ClassVar[int]
    TRADING_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    COSTS_FIELD_NUMBER: _ClassVar[int]
    GROSS_MARGIN_PCT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    as_of: _timestamp_pb2.Timestamp
    currency: str
    net_pnl: str
    trading: Trading
    revenue: Revenue
    costs: Costs
    gross_margin_pct: str
    change: DayChange
    agents: _containers.MessageMap[str, Agent]
    sources: _containers.MessageMap[str, SourceState]
    def __init__(self, as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., currency: _Optional[str] = ..., net_pnl: _Optional[str] = ..., trading: _Optional[_Union[Trading, _Mapping]] = ..., revenue: _Optional[_Union[Revenue, _Mapping]] = ..., costs: _Optional[_Union[Costs, _Mapping]] = ..., gross_margin_pct: _Optional[str] = ..., change: _Optional[_Union[DayChange, _Mapping]] = ..., agents: _Optional[_Mapping[str, Agent]] = ..., sources: _Optional[_Mapping[str, SourceState]] = ...) -> None: ...

class Trading(_message.Message):
    __slots__ = ("realized", "unrealized", "fees", "total", "balance")
    REALIZED_FIELD_NUMBER: _ClassVar[int]
    UNREALIZED_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    realized: str
    unrealized: str
    fees: str
    total: str
    balance: str
    def __init__(self, realized: _Optional[str] = ..., unrealized: _Optional[str] = ..., fees: _Optional[str] = ..., total: _Optional[str] = ..., balance: _Optional[str] = ...) -> None: ...

class Revenue(_message.Message):
    __slots__ = ("invoiced", "collected", "basis")
    INVOICED_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_FIELD_NUMBER: _ClassVar[int]
    BASIS_FIELD_NUMBER: _ClassVar[int]
    invoiced: str
    collected: str
    basis: str
    def __init__(self, invoiced: _Optional[str] = ..., collected: _Optional[str] = ..., basis: _Optional[str] = ...) -> None: ...

class Costs(_message.Message):
    __slots__ = ("total", "estimated", "by_category", "by_model")
    class ByCategoryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ByModelEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    BY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    BY_MODEL_FIELD_NUMBER: _ClassVar[int]
    total: str
    estimated: str
    by_category: _containers.ScalarMap[str, str]
    by_model: _containers.ScalarMap[str, str]
    def __init__(self, total: _Optional[str] = ..., estimated: _Optional[str] = ..., by_category: _Optional[_Mapping[str, str]] = ..., by_model: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DayChange(_message.Message):
    __slots__ = ("day", "since_midnight", "since_previous")
    DAY_FIELD_NUMBER: _ClassVar[int]
    SINCE_MIDNIGHT_FIELD_NUMBER: _ClassVar[int]
    SINCE_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    day: str
    since_midnight: str
    since_previous: str
    def __init__(self, day: _Optional[str] = ..., since_midnight: _Optional[str] = ..., since_previous: _Optional[str] = ...) -> None: ...

class Agent(_message.Message):
    __slots__ = ("trading", "revenue", "costs", "net")
    TRADING_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    COSTS_FIELD_NUMBER: _ClassVar[int]
    NET_FIELD_NUMBER: _ClassVar[int]
    trading: str
    revenue: str
    costs: str
    net: str
    def __init__(self, trading: _Optional[str] = ..., revenue: _Optional[str] = ..., costs: _Optional[str] = ..., net: _Optional[str] = ...) -> None: ...

class SourceState(_message.Message):
    __slots__ = ("plugin", "status", "stale", "as_of", "last_error")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    status: str
    stale: bool
    as_of: _timestamp_pb2.Timestamp
    last_error: str
    def __init__(self, plugin: _Optional[str] = ..., status: _Optional[str] = ..., stale: _Optional[bool] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ...) -> None: ...

class GetCurrentRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ("from_time", "to_time", "resolution")
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    from_time: _timestamp_pb2.Timestamp
    to_time: _timestamp_pb2.Timestamp
    resolution: str
    def __init__(self, from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., to_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolution: _Optional[str] = ...) -> None: ...

class Ohlc(_message.Message):
    __slots__ = ("open", "close", "min", "max")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    open: str
    close: str
    min: str
    max: str
    def __init__(self, open: _Optional[str] = ..., close: _Optional[str] = ..., min: _Optional[str] = ..., max: _Optional[str] = ...) -> None: ...

class HistoryBucket(_message.Message):
    __slots__ = ("start", "net", "trading", "revenue", "costs")
    START_FIELD_NUMBER: _ClassVar[int]
    NET_FIELD_NUMBER: _ClassVar[int]
    TRADING_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    COSTS_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    net: Ohlc
    trading: Ohlc
    revenue: Ohlc
    costs: Ohlc
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., net: _Optional[_Union[Ohlc, _Mapping]] = ..., trading: _Optional[_Union[Ohlc, _Mapping]] = ..., revenue: _Optional[_Union[Ohlc, _Mapping]] = ..., costs: _Optional[_Union[Ohlc, _Mapping]] = ...) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("resolution", "from_time", "to_time", "buckets")
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    resolution: str
    from_time: _timestamp_pb2.Timestamp
    to_time: _timestamp_pb2.Timestamp
    buckets: _containers.RepeatedCompositeFieldContainer[HistoryBucket]
    def __init__(self, resolution: _Optional[str] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., to_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., buckets: _Optional[_Iterable[_Union[HistoryBucket, _Mapping]]] = ...) -> None: ...

class ListSourcesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Source(_message.Message):
    __slots__ = ("name", "plugin", "status", "stale", "as_of", "last_error", "interval_s", "enabled", "breaker", "polls", "errors", "last_latency_ms", "streaming")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    POLLS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    LAST_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    name: str
    plugin: str
    status: str
    stale: bool
    as_of: _timestamp_pb2.Timestamp
    last_error: str
    interval_s: float
    enabled: bool
    breaker: str
    polls: int
    errors: int
    last_latency_ms: float
    streaming: bool
    def __init__(self, name: _Optional[str] = ..., plugin: _Optional[str] = ..., status: _Optional[str] = ..., stale: _Optional[bool] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., interval_s: _Optional[float] = ..., enabled: _Optional[bool] = ..., breaker: _Optional[str] = ..., polls: _Optional[int] = ..., errors: _Optional[int] = ..., last_latency_ms: _Optional[float] = ..., streaming: _Optional[bool] = ...) -> None: ...

class ListSourcesResponse(_message.Message):
    __slots__ = ("sources",)
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[Source]
    def __init__(self, sources: _Optional[_Iterable[_Union[Source, _Mapping]]] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("from_position", "to_position", "from_time", "to_time", "limit")
    FROM_POSITION_FIELD_NUMBER: _ClassVar[int]
    TO_POSITION_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    from_position: StreamPosition
    to_position: StreamPosition
    from_time: _timestamp_pb2.Timestamp
    to_time: _timestamp_pb2.Timestamp
    limit: int
    def __init__(self, from_position: _Optional[_Union[StreamPosition, _Mapping]] = ..., to_position: _Optional[_Union[StreamPosition, _Mapping]] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., to_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class ExplainEnd(_message.Message):
    __slots__ = ("position", "as_of")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    position: str
    as_of: str
    def __init__(self, position: _Optional[str] = ..., as_of: _Optional[str] = ...) -> None: ...

class Figures(_message.Message):
    __slots__ = ("amounts",)
    class AmountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AMOUNTS_FIELD_NUMBER: _ClassVar[int]
    amounts: _containers.ScalarMap[str, str]
    def __init__(self, amounts: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ExplainItem(_message.Message):
    __slots__ = ("source", "kind", "id", "label", "agent", "model", "ticker", "contributions")
    class ContributionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TICKER_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    source: str
    kind: str
    id: str
    label: str
    agent: str
    model: str
    ticker: str
    contributions: _containers.ScalarMap[str, str]
    def __init__(self, source: _Optional[str] = ..., kind: _Optional[str] = ..., id: _Optional[str] = ..., label: _Optional[str] = ..., agent: _Optional[str] = ..., model: _Optional[str] = ..., ticker: _Optional[str] = ..., contributions: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ExplainGroup(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Figures
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Figures, _Mapping]] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.MessageMap[str, Figures]
    def __init__(self, values: _Optional[_Mapping[str, Figures]] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("from_end", "to_end", "difference", "items", "groups", "items_by")
    class DifferenceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class GroupsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ExplainGroup
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ExplainGroup, _Mapping]] = ...) -> None: ...
    FROM_END_FIELD_NUMBER: _ClassVar[int]
    TO_END_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_BY_FIELD_NUMBER: _ClassVar[int]
    from_end: ExplainEnd
    to_end: ExplainEnd
    difference: _containers.ScalarMap[str, str]
    items: _containers.RepeatedCompositeFieldContainer[ExplainItem]
    groups: _containers.MessageMap[str, ExplainGroup]
    items_by: str
    def __init__(self, from_end: _Optional[_Union[ExplainEnd, _Mapping]] = ..., to_end: _Optional[_Union[ExplainEnd, _Mapping]] = ..., difference: _Optional[_Mapping[str, str]] = ..., items: _Optional[_Iterable[_Union[ExplainItem, _Mapping]]] = ..., groups: _Optional[_Mapping[str, ExplainGroup]] = ..., items_by: _Optional[str] = ...) -> None: ...

class WatchAlertsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AlertEvent(_message.Message):
    __slots__ = ("id", "alert", "event", "severity", "kind", "ts", "epoch", "seq", "value", "threshold", "description", "text", "explain", "current")
    ID_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    id: int
    alert: str
    event: str
    severity: str
    kind: str
    ts: _timestamp_pb2.Timestamp
    epoch: str
    seq: int
    value: str
    threshold: str
    description: str
    text: str
    explain: str
    current: bool
    def __init__(self, id: _Optional[int] = ..., alert: _Optional[str] = ..., event: _Optional[str] = ..., severity: _Optional[str] = ..., kind: _Optional[str] = ..., ts: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., epoch: _Optional[str] = ..., seq: _Optional[int] = ..., value: _Optional[str] = ..., threshold: _Optional[str] = ..., description: _Optional[str] = ..., text: _Optional[str] = ..., explain: _Optional[str] = ..., current: _Optional[bool] = ...) -> None: ...

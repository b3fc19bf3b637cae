"""What the blocking and asyncio APIs share: the progress and metrics documents, the
``/start`` body built from keyword arguments, and the engine settings."""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _mongosync

if sys.version_info >= (3, 11):
    from typing import Literal, TypedDict
else:  # pragma: no cover
    from typing_extensions import Literal, TypedDict

State = Literal["IDLE", "RUNNING", "PAUSED", "COMMITTING", "COMMITTED", "REVERSING"]
"""A state of a sync, as in ``/progress``."""

ClusterName = Literal["cluster0", "cluster1"]
BuildIndexes = Literal[
    "afterDataCopy", "beforeDataCopy", "excludeHashed", "excludeHashedAfterCopy", "never"
]
WriteBlocking = Union[Literal["destinationOnly", "sourceAndDestination", "none"], bool]


class RegexSpec(TypedDict, total=False):
    """A regular expression as mongosync's filters take it."""

    pattern: str
    options: str


class NamespaceFilter(TypedDict, total=False):
    """One entry of ``includeNamespaces`` / ``excludeNamespaces`` (mongosync's JSON form)."""

    database: str
    databaseRegex: RegexSpec
    collections: List[str]
    collectionsRegex: RegexSpec


_START_KEYS = {
    "source": "source",
    "destination": "destination",
    "include_namespaces": "includeNamespaces",
    "exclude_namespaces": "excludeNamespaces",
    "build_indexes": "buildIndexes",
    "reversible": "reversible",
    "enable_user_write_blocking": "enableUserWriteBlocking",
    "pre_existing_destination_data": "preExistingDestinationData",
}


def start_body(body: Optional[Mapping[str, Any]], **kwargs: Any) -> str:
    """The ``/start`` body as JSON: ``body`` (mongosync's camelCase keys) updated with the
    keyword arguments that are not ``None``; ``source`` defaults to ``"cluster0"`` and
    ``destination`` to the other cluster. The engine validates it."""
    doc: Dict[str, Any] = dict(body or {})
    for name, value in kwargs.items():
        if value is not None:
            doc[_START_KEYS[name]] = list(value) if name.endswith("_namespaces") else value
    doc.setdefault("source", "cluster0")
    if "destination" not in doc and doc["source"] in ("cluster0", "cluster1"):
        doc["destination"] = "cluster1" if doc["source"] == "cluster0" else "cluster0"
    return json.dumps(doc)


def connect_options(**kwargs: Any) -> _mongosync.ConnectOptions:
    """The engine settings from ``connect``'s keyword arguments."""
    return _mongosync.ConnectOptions(**{k: v for k, v in kwargs.items() if v is not None})


def _empty() -> Dict[str, Any]:
    return {}


@dataclass(frozen=True)
class CollectionCopy:
    """``progress.collectionCopy``."""

    estimated_total_bytes: int
    estimated_copied_bytes: int


@dataclass(frozen=True)
class DirectionMapping:
    """``progress.directionMapping``: ``"cluster0: host:port"`` strings."""

    source: str
    destination: str


@dataclass(frozen=True)
class Lag:
    """``progress.lag``."""

    overall_lag_seconds: int
    crud_lag_seconds: Optional[int]
    ddl_lag_seconds: Optional[int]


@dataclass(frozen=True)
class Progress:
    """mongosync's ``/progress`` document, typed. :meth:`to_dict` gives the document itself
    (the engine's JSON, mongosync's names), e.g. ``{"state": "RUNNING", "canCommit": false, ...}``.
    """

    state: State
    can_commit: bool
    can_write: Optional[bool]
    info: Optional[str]
    lag_time_seconds: Optional[int]
    lag: Optional[Lag]
    total_events_applied: Optional[int]
    collection_copy: Optional[CollectionCopy]
    direction_mapping: Optional[DirectionMapping]
    mongosync_id: Optional[str]
    coordinator_id: Optional[str]
    warnings: List[str]
    estimated_oplog_time_remaining: Optional[str] = None
    cea_stage: Optional[str] = None
    source_ping_latency_ms: Optional[int] = None
    destination_ping_latency_ms: Optional[int] = None
    _document: Dict[str, Any] = field(default_factory=_empty, repr=False, compare=False)

    @classmethod
    def from_json(cls, text: str) -> Progress:
        """Parses the engine's JSON."""
        d: Dict[str, Any] = json.loads(text)
        cc = d.get("collectionCopy")
        mapping = d.get("directionMapping")
        lag = d.get("lag")
        src: Dict[str, Any] = d.get("source") or {}
        dst: Dict[str, Any] = d.get("destination") or {}
        return cls(
            state=d["state"],
            can_commit=d["canCommit"],
            can_write=d.get("canWrite"),
            info=d.get("info"),
            lag_time_seconds=d.get("lagTimeSeconds"),
            lag=Lag(lag["overallLagSeconds"], lag.get("crudLagSeconds"), lag.get("ddlLagSeconds"))
            if lag
            else None,
            total_events_applied=d.get("totalEventsApplied"),
            collection_copy=CollectionCopy(
                cc["estimatedTotalBytes"], cc["estimatedCopiedBytes"]
            )
            if cc
            else None,
            direction_mapping=DirectionMapping(mapping["Source"], mapping["Destination"])
            if mapping
            else None,
            mongosync_id=d.get("mongosyncID"),
            coordinator_id=d.get("coordinatorID"),
            warnings=list(d.get("warnings", [])),
            estimated_oplog_time_remaining=d.get("estimatedOplogTimeRemaining"),
            cea_stage=d.get("ceaStage"),
            source_ping_latency_ms=src.get("pingLatencyMs"),
            destination_ping_latency_ms=dst.get("pingLatencyMs"),
            _document=d,
        )

    def to_dict(self) -> Dict[str, Any]:
        """The ``progress`` document exactly as mongosync's ``GET /api/v1/progress`` has it."""
        return copy.deepcopy(self._document)


@dataclass(frozen=True)
class Metrics:
    """The engine's counters (see ``mongosync_core::Metrics``); :meth:`to_dict` gives them all
    with camelCase keys."""

    state: State
    documents_copied: int
    bytes_copied: int
    bytes_to_copy: int
    events_read: int
    events_applied: int
    ddl_applied: int
    refetches: int
    lag_seconds: Optional[int]
    oplog_headroom_seconds: Optional[int]
    _document: Dict[str, Any] = field(default_factory=_empty, repr=False, compare=False)

    @classmethod
    def from_json(cls, text: str) -> Metrics:
        """Parses the engine's JSON."""
        d: Dict[str, Any] = json.loads(text)
        return cls(
            state=d["state"],
            documents_copied=d["documentsCopied"],
            bytes_copied=d["bytesCopied"],
            bytes_to_copy=d["bytesToCopy"],
            events_read=d["eventsRead"],
            events_applied=d["eventsApplied"],
            ddl_applied=d["ddlApplied"],
            refetches=d["refetches"],
            lag_seconds=d.get("lagSeconds"),
            oplog_headroom_seconds=d.get("oplogHeadroomSeconds"),
            _document=d,
        )

    def to_dict(self) -> Dict[str, Any]:
        """Every counter, camelCase keys (``namespaces``, ``retries``, batch histograms)."""
        return copy.deepcopy(self._document)


def wrap_error(err: BaseException, wrap: Any) -> None:
    """Gives a failed transition's error the syncer it handed back in another state."""
    native = getattr(err, "_native_syncer", None)
    if native is not None:
        setattr(err, "syncer", wrap(native))


Namespaces = Sequence[NamespaceFilter]

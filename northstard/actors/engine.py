"""The engine actor: applies readings to the ``Book`` and emits numbered changes.

Each accepted change gets ``seq`` (previous + 1, gap-free) within the
stream's ``epoch``; its delta is the merge patch from the last published
document to the new one. Changes go to the writer, which passes them on
once they are on disk. At start the state is rebuilt from SQLite
(``recover``) and the sequence continues.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
import trio

from northstard.actors.source import SourceFailed, SourceMessage
from northstard.config import SourceSection
from northstard.core.change import Change
from northstard.core.explain import change_groups
from northstard.core.mergepatch import Doc, diff
from northstard.core.pnl import Book, RevenueBasis, StoredRecords, screen
from northstard.core.records import Record
from northstard.store.sqlite import Persisted

__all__ = ["EngineState", "recover", "run_engine"]

log = structlog.get_logger("northstard.engine")

STALE_CHECK_S = 1.0
ERROR_CHARS = 300  # a source's last_error is cut to this many characters

ObserveRefused = Callable[[str, int], None]


def _ignore_refused(source: str, count: int) -> None:
    """The default ``observe_refused``: count nothing."""


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class EngineState:
    """The engine's state, kept by the supervisor across restarts of the actor."""

    book: Book
    epoch: str
    seq: int
    doc: Doc | None
    states: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<EngineState {self.epoch}:{self.seq} {self.book!r}>"


def recover(
    persisted: Persisted,
    sources: Sequence[SourceSection],
    basis: RevenueBasis = "invoiced",
    currency: str = "USD",
    now: datetime | None = None,
    store: StoredRecords | None = None,
) -> EngineState:
    """Rebuild the engine state from what SQLite holds (``store``: its records, by key)."""
    now = now or wall_clock()
    book = Book(basis=basis, currency=currency, store=store)
    for section in sources:
        if section.enabled:
            book.add_source(section.name, section.plugin, section.stale_after_s)
    stored = persisted.sources | {source for source, _ in persisted.records}
    for source in sorted(stored - set(book.sources)):
        book.add_source(source, "not configured", 0.0)
    book.resume(persisted.totals, persisted.records)
    if persisted.doc is not None:
        book.restore(persisted.doc, now)
    state = EngineState(book=book, epoch=persisted.epoch, seq=persisted.seq, doc=persisted.doc)
    # what the last published document claimed: a restart that changes it publishes at once
    published = (persisted.doc or {}).get("sources", {})
    state.states = {name: entry.get("status", "") for name, entry in published.items()}
    return state


def refusal_summary(refused: Sequence[str]) -> str | None:
    """The ``last_error`` of a source whose reading refused records, or None."""
    if not refused:
        return None
    more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
    noun = "record" if len(refused) == 1 else "records"
    return f"{len(refused)} {noun} refused{more}: {refused[0]}"[:ERROR_CHARS]


def _apply(
    state: EngineState, message: SourceMessage, now: datetime,
    observe_refused: ObserveRefused = _ignore_refused,
) -> list[tuple[str, Record]]:
    """Apply one message from a source; returns the records that changed.

    Records the plugin refused (``Reading.refused``) or the book cannot take
    exactly (``pnl.screen``) leave the source ``degraded``, their reasons in
    its ``last_error``; the reading's other records count. A kind with a
    refused record is not treated as complete: its stored records stay.
    """
    book = state.book
    if isinstance(message, SourceFailed):
        if message.source in book.sources:
            book.source_failed(message.source, message.error)
        return []
    if message.source not in book.sources:
        log.warning("reading from an unknown source dropped", source=message.source)
        return []
    records, refused_here = screen(book, message.source, message.records)
    kinds = message.complete_kinds
    if refused_here:
        kept = {(r.kind, r.id) for r in records}
        lost = {r.kind for r in message.records if (r.kind, r.id) not in kept}
        kinds = tuple(kind for kind in kinds if kind not in lost)
    changed = book.ingest(message.source, records, kinds)
    refused = [*message.refused, *refused_here]
    _say_refused(book, message.source, refused)
    book.source_ok(message.source, message.as_of, now, refusal_summary(refused))
    if refused:
        observe_refused(message.source, len(refused))
    return [(message.source, record) for record in changed]


def _say_refused(book: Book, source: str, refused: Sequence[str]) -> None:
    """Log when what a source's readings refuse changes, not at every reading."""
    before = book.sources[source].refused
    summary = refusal_summary(refused)
    if summary == before:
        return
    if summary is None:
        log.info("source no longer refuses records", source=source)
    else:
        log.error("records refused", source=source, count=len(refused), reasons=list(refused[:5]))


def _apply_all(
    state: EngineState,
    messages: Iterable[SourceMessage],
    now: datetime,
    observe_refused: ObserveRefused = _ignore_refused,
) -> tuple[list[tuple[str, Record]], bool]:
    changed: list[tuple[str, Record]] = []
    touched = False
    for message in messages:
        try:
            changed.extend(_apply(state, message, now, observe_refused))
            touched = True
        except Exception as exc:  # a poison reading must not stop the engine
            source = getattr(message, "source", "?")
            log.error("reading rejected", source=source, error=f"{type(exc).__name__}: {exc}")
            if source in state.book.sources:
                state.book.source_failed(source, f"reading rejected: {type(exc).__name__}")
                touched = True
    return changed, touched


def next_change(
    state: EngineState, records: Sequence[tuple[str, Record]], now: datetime
) -> Change:
    """Number the new document and record it as published."""
    book = state.book
    doc = book.document(now)
    patch = diff(state.doc or {}, doc)
    facts = book.take_change()
    change = Change(
        epoch=state.epoch,
        seq=state.seq + 1,
        ts_ms=int(now.timestamp() * 1000),
        doc=doc,
        patch=patch,
        records=tuple(records),
        totals=tuple(book.take_cold_totals().items()),
        keys=tuple(facts.keys),
        groups=change_groups(facts),
    )
    book.stamp(change.seq)
    state.seq = change.seq
    state.doc = doc
    book.published(doc)
    return change


async def _gather(
    receive: trio.MemoryReceiveChannel[SourceMessage], max_batch: int, patience: float
) -> list[SourceMessage] | None:
    """Messages that are waiting (at least one, unless ``patience`` s pass); None at the end."""
    messages: list[SourceMessage] = []
    with trio.move_on_after(patience):
        try:
            messages.append(await receive.receive())
        except trio.EndOfChannel:
            return None
    while messages and len(messages) < max_batch:
        try:
            messages.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    return messages


async def run_engine(
    state: EngineState,
    receive: trio.MemoryReceiveChannel[SourceMessage],
    send: trio.MemorySendChannel[Change],
    max_batch: int = 256,
    now: Callable[[], datetime] = wall_clock,
    observe_refused: ObserveRefused = _ignore_refused,
    *,
    committed: Callable[[], int] = lambda: 0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Turn readings into changes until the input closes; then close the output.

    ``observe_refused(source, count)`` is told of every reading that refused records.

    ``committed`` says up to which seq the writer has committed: records the
    Book keeps only until they are saved are let go after each batch.
    """
    task_status.started()
    if state.doc is None:  # a brand-new store: publish the first snapshot at once
        await send.send(next_change(state, [], now()))
    while (messages := await _gather(receive, max_batch, STALE_CHECK_S)) is not None:
        moment = now()
        records, touched = _apply_all(state, messages, moment, observe_refused)
        states = state.book.source_states(moment)
        if touched or states != state.states:
            state.states = states
            await send.send(next_change(state, records, moment))
        state.book.saved(committed())
    log.info("engine drained", seq=state.seq)
    await send.aclose()



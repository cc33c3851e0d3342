"""The outbox across a SIGKILL: the daemon dies while the receiver holds a delivery unanswered;
after the restart that event is sent again (same Idempotency-Key), the rest follow in order, no
event acknowledged with a 2xx is ever sent again, and no alert fires a second time."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import trio
from webhook_receiver import Delivery, Receiver

from northstard.store import alertstore

from conftest import write_config
from proc import DaemonProcess

SECRET = "whsec-kill-4b2e"
RULES = {name: {"metric": metric, "above": "-1000000.00", "notify": ["ops"]}
         for name, metric in (("a_net", "net_pnl"), ("b_costs", "costs.total"),
                              ("c_invoiced", "revenue.invoiced"))}


async def test_a_sigkill_mid_delivery_loses_nothing_and_repeats_only_the_unanswered(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    receiver = await Receiver(SECRET, failures=[500]).start(nursery)
    config = write_config(
        tmp_path, {"demo": {"interval_s": 0.05, "seed": 3}}, alerts=RULES,
        notifiers={"ops": {"url": receiver.url, "backoff_initial_s": 0.05, "timeout_s": 5.0}},
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log",
                           env={"NORTHSTARD_NOTIFIERS__OPS__SECRET": SECRET})
    killed = trio.Event()

    async def kill_on_second_event(delivery: Delivery) -> None:
        if not killed.is_set() and delivery.body["alert"]["alert"] == "b_costs":
            await daemon.kill()  # SIGKILL while this delivery waits for its answer
            killed.set()
            raise trio.BrokenResourceError  # the connection dies with the sender

    receiver.before_answer = kill_on_second_event
    try:
        await daemon.start()
        with trio.fail_after(30):
            await killed.wait()
        receiver.before_answer = None
        await daemon.start()
        with trio.fail_after(30):
            await receiver.wait_accepted(3)
    finally:
        await daemon.kill()
    assert [d.body["alert"]["alert"] for d in receiver.accepted] == ["a_net", "b_costs", "c_invoiced"]
    assert all(d.signature_ok for d in receiver.attempts)
    for key in {d.key for d in receiver.accepted}:
        answers = [d.status for d in receiver.attempts if d.key == key]
        assert answers.count(200) == 1 and answers[-1] == 200  # never sent again once acknowledged
    b_costs = [d.status for d in receiver.attempts if d.body["alert"]["alert"] == "b_costs"]
    assert b_costs == [None, 200]  # the one in flight at the kill: sent again, same key
    with closing(sqlite3.connect(tmp_path / "northstard.db")) as conn:
        events = alertstore.history(conn, None, 100)
        assert sorted((e["alert"], e["event"]) for e in events) == [
            ("a_net", "firing"), ("b_costs", "firing"), ("c_invoiced", "firing")]
        left = {f"{row.body['id']}-ops" for row in alertstore.pending(conn, 10)}
        assert left <= {d.key for d in receiver.accepted[-1:]}  # at most the last, answered as we stopped

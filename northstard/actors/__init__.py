"""The actors under the root nursery: source, engine, writer, hub, cache, backups, notifier, supervisor.

They talk through memory channels; each is shaped ``run_x(..., *, task_status)``.
"""

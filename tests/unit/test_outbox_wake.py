"""PostgreSQL replicas: which outbox notifications wake a relay (the payload's format is checked
against a real server in tests/integration/test_postgres_connections.py)."""

from services.common.outbox import woken_by


def test_a_relay_wakes_for_other_replicas_commits_in_its_schema_and_after_a_reconnection() -> None:
    ours, theirs = "0a1b2c3d4e5f", "f5e4d3c2b1a0"
    assert woken_by(f"finance {theirs}", "finance", ours)  # another replica's commit
    assert woken_by("finance", "finance", ours)  # a replica of the version before origins were sent
    assert woken_by(None, "finance", ours)  # the listener reconnected: notifications may have been lost
    assert not woken_by(f"finance {ours}", "finance", ours)  # our own commit: the relay was woken directly
    assert not woken_by(f"travel {theirs}", "finance", ours)  # another schema's outbox

"""Transactions that only read (services.common.db.reading; the GET routes): they refuse writes, they
do not wait for a writer (on SQLite they skip the process's writer lock), and they see only what
was committed; on SQLite and PostgreSQL."""

import asyncio
from uuid import UUID

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError

from services.common.db import OutboxMessage
from services.travel.db import travel_claims
from tests.integration.test_travel_claims import claim_body, travel  # noqa: F401 (the fixture)


async def _claim(travel) -> UUID:
    response = await travel.client.post("/claims", json=claim_body(await travel.delegate()))
    assert response.status_code == 201, response.text
    return UUID(response.json()["id"])


async def test_a_read_only_unit_of_work_refuses_a_write_and_its_connection_writes_again_afterwards(travel) -> None:
    runtime = travel.runtime
    row = {"message_id": "read-only-probe", "topic": "t", "key": None, "value": b"", "headers": []}
    for _ in range(3):  # the pool hands the same connections back: each must be a writer's again
        async with runtime.unit_of_work(read_only=True) as uow:
            assert (await uow.session.scalar(select(OutboxMessage.position).limit(1))) is None
            with pytest.raises(DBAPIError, match="(?i)read.?only"):
                await uow.session.execute(insert(OutboxMessage.__table__).values(row))
    async with runtime.unit_of_work() as uow:
        await uow.session.execute(insert(OutboxMessage.__table__).values(row))
        await uow.commit()
    async with runtime.unit_of_work(read_only=True) as uow:
        assert await uow.session.scalar(select(OutboxMessage.message_id)) == "read-only-probe"


async def test_a_get_answers_while_a_writer_holds_its_transaction_open_and_sees_only_what_was_committed(travel) -> None:
    claim_id = await _claim(travel)
    async with travel.runtime.unit_of_work() as writer:
        # A writer mid-transaction (on SQLite it holds the process's writer lock until it ends).
        await writer.session.execute(update(travel_claims).where(travel_claims.c.id == claim_id).values(status="approved"))
        async with asyncio.timeout(5):  # before, the GET queued behind the writer: here, for ever
            shown = await travel.client.get(f"/claims/{claim_id}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["status"] == "submitted"
        await writer.commit()
    assert (await travel.client.get(f"/claims/{claim_id}")).json()["status"] == "approved"

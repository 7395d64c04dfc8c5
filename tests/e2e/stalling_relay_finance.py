"""Finance, except that its outbox relay stalls mid-batch: 100 records sent, then the next send
hangs, holding the relay lock, and the file STALLED_FILE says so (the test then kills the process:
no cleanup, the lock goes with its connection). Settings come from the environment."""

import asyncio
import os
from pathlib import Path

from services.common.kafka import create_producer
from services.finance.app import build_app
from services.finance.settings import FinanceSettings


async def main() -> None:
    settings = FinanceSettings()
    app = build_app(settings)
    sent = 0

    def stalling_producer():
        producer = create_producer(settings)
        send = producer.send

        async def stalling_send(*args, **kwargs):
            nonlocal sent
            if sent == 100:
                Path(os.environ["STALLED_FILE"]).touch()
                await asyncio.Event().wait()
            sent += 1
            return await send(*args, **kwargs)

        producer.send = stalling_send
        return producer

    app.state.runtime.relay._producer_factory = stalling_producer
    async with app.router.lifespan_context(app):
        await asyncio.Event().wait()


asyncio.run(main())

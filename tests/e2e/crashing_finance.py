"""Finance, except that it dies (os._exit, no cleanup) right after its first database commit that
applied an event, before the Kafka ack: the window a real crash can hit. Settings come from the
environment, as for `python -m services.finance`."""

import asyncio
import os

from services.common.consumer import EventConsumer
from services.finance.app import build_app
from services.finance.settings import FinanceSettings


async def die_after_commit(self, outcome) -> None:
    if outcome.applied:
        os._exit(86)


async def main() -> None:
    EventConsumer.after_commit = die_after_commit
    app = build_app(FinanceSettings())
    async with app.router.lifespan_context(app):
        await asyncio.Event().wait()


asyncio.run(main())

"""PostgreSQL LISTEN on a dedicated connection, kept open: how one replica hears what another committed."""

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy.engine import make_url

from services.common.db import normalise_url
from services.common.retry import Backoff

log = logging.getLogger("icc.notify")

CHECK_SECONDS = 30.0  # a connection lost without a word (a network partition) shows at the next check


async def listen(
    url: str, channel: str, heard: Callable[[str | None], None], *, name: str, retry_max_seconds: float = 5.0
) -> None:
    """Call `heard(payload)` for each notification on `channel`, until cancelled. After every
    (re)connection `heard(None)`: notifications sent meanwhile are lost, so assume something changed.
    The connection is the listener's own (the pool's would be returned and lose the LISTEN), named
    `name` in pg_stat_activity, and it reconnects with back-off when it drops."""
    dsn = make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)
    backoff = Backoff(cap=retry_max_seconds)
    down = False
    while True:
        connection = None
        try:
            connection = await asyncpg.connect(dsn, timeout=10, server_settings={"application_name": name[:63]})
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(channel, lambda _conn, _pid, _channel, payload: heard(payload))
            if down:
                log.info("listening again", extra={"channel": channel})
            down = False
            backoff.reset()
            heard(None)
            while not lost.is_set():
                try:
                    async with asyncio.timeout(CHECK_SECONDS):
                        await lost.wait()
                except TimeoutError:
                    async with asyncio.timeout(5):
                        await connection.execute("SELECT 1")
            raise ConnectionError("the listening connection was closed")
        except asyncio.CancelledError:
            raise
        except Exception as err:
            _close(connection)
            delay = backoff.next()
            if not down:
                log.warning("cannot listen; retrying", extra={"channel": channel, "error": repr(err), "retry_in_s": round(delay, 2)})
                down = True
            await asyncio.sleep(delay)
        finally:
            _close(connection)


def _close(connection: asyncpg.Connection | None) -> None:
    if connection is not None and not connection.is_closed():
        connection.terminate()  # no round trip: it is broken, or we are stopping

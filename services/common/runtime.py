"""Service defaults: what every service process runs besides its own rules.

`build_service` turns a service's parts (settings, unit of work, routes, event handlers,
migrations) into a FastAPI app whose lifespan applies migrations before taking traffic, runs the
outbox relay, connects the FastStream broker (waiting out an absent broker), and serves
`/health` and `/ready`. It also installs token checking (`services.common.auth`: the provider's keys
come over HTTP unless a test passes its own `keys`) and the browser sessions a sign-in creates
(`services.common.login`). All five services are built by it, identically."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from faststream.kafka import KafkaBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contracts.events import Event
from contracts.topics import CONSUMES, PRODUCES, dead_letter_topic
from services.common.consumer import EventConsumer, Handler
from services.common.db import OUTBOX_CHANNEL, UnitOfWork, create_engine, migrate, reading
from services.common.errors import install_error_handlers
from contracts.envelope import Actor
from services.common import auth
from services.common.audit import audit_router
from services.common.kafka import TopicsNotCreatedYet, create_broker, create_producer, ensure_topics
from services.common.login import WebSessions
from services.common.logs import configure_logging
from services.common.metrics import Metrics, ObserveHttp
from services.common.notify import listen
from services.common.outbox import OutboxRelay, woken_by
from services.common.purge import keep_purging
from services.common.retry import Backoff
from services.common.settings import ServiceSettings
from services.common.tracing import Tracing

log = logging.getLogger("icc.runtime")


@dataclass
class ServiceRuntime:
    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    readers: async_sessionmaker[AsyncSession]  # sessions that only read (db.reading)
    uow_class: type[UnitOfWork]
    broker: KafkaBroker
    relay: OutboxRelay
    consumer: EventConsumer | None
    metrics: Metrics
    tracing: Tracing
    broker_connected: asyncio.Event = field(default_factory=asyncio.Event)
    broker_waiting: str = "connecting"  # why the consumers have not started yet, for /ready
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    # A service's own background work (finance: listening for other replicas' changes), run like the relay.
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork:
        """`read_only`: a transaction that reads and never writes (a write in it fails); on SQLite it
        does not queue for the writer lock behind requests, consumers and the relay."""
        return self.uow_class(self.readers if read_only else self.sessions, self.settings.service, self.relay.wake, self.relay.origin)


# async on purpose: FastAPI runs a plain-def dependency on a worker thread, a thread hand-off per
# request that costs more than the dependency itself.
async def get_runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


async def get_unit_of_work(request: Request) -> UnitOfWork:
    """A unit of work acting for the signed-in caller (route rules run before it): what it emits
    carries them as the actor and goes into the audit trail."""
    return _acting_for_caller(request, request.app.state.runtime.unit_of_work())


async def get_reading_unit_of_work(request: Request) -> UnitOfWork:
    """For routes that only read: a read-only unit of work (ServiceRuntime.unit_of_work)."""
    return _acting_for_caller(request, request.app.state.runtime.unit_of_work(read_only=True))


def _acting_for_caller(request: Request, uow: UnitOfWork) -> UnitOfWork:
    def caller() -> Actor | None:
        principal: auth.Principal | None = getattr(request.state, "principal", None)
        return principal.actor if principal is not None else None

    uow.caller = caller
    return uow


Runtime = Annotated[ServiceRuntime, Depends(get_runtime)]

health = APIRouter(tags=["health"], dependencies=[auth.public])


@health.get("/health", summary="The process is alive")
async def alive(runtime: Runtime) -> dict[str, str]:
    return {"status": "ok", "service": runtime.settings.service}


@health.get("/ready", summary="Database and broker reachable", responses={503: {"description": "not ready"}})
async def ready(runtime: Runtime) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2), runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as err:
        checks["database"] = f"unreachable: {err!r}"
    if not runtime.broker_connected.is_set():
        checks["broker"] = f"not connected yet ({runtime.settings.kafka_bootstrap_servers}: {runtime.broker_waiting}); retrying"
    elif await runtime.broker.ping(timeout=2):
        checks["broker"] = "ok"
    else:
        checks["broker"] = f"unreachable at {runtime.settings.kafka_bootstrap_servers}"
    checks["outbox_pending"] = str(await runtime.relay.pending()) if checks["database"] == "ok" else "unknown"
    ok = checks["database"] == "ok" and checks["broker"] == "ok"
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)


# Open like the probes, for Prometheus, not part of the API (so not in its OpenAPI document); in production
# only the cluster network reaches it (README: Metrics).
@health.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response, include_in_schema=False)
async def scrape(runtime: Runtime) -> Response:
    broker = runtime.broker if runtime.broker_connected.is_set() else None
    return Response(await runtime.metrics.scrape(runtime.relay.pending, broker), media_type="text/plain; version=0.0.4; charset=utf-8")


async def _connect_broker(runtime: ServiceRuntime, topics: list[str]) -> None:
    """Start consuming as soon as the broker answers; until then the API and the outbox keep working."""
    settings = runtime.settings
    backoff = Backoff(cap=settings.retry_max_seconds)
    warned: set[type] = set()
    while True:
        try:
            await ensure_topics(settings, topics)
            await runtime.broker.start()
            runtime.broker_connected.set()
            log.info("connected to kafka", extra={"bootstrap": settings.kafka_bootstrap_servers})
            return
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if asyncio.current_task().cancelling():
                raise  # a cancellation surfacing as a connection error: we are stopping
            delay = backoff.next()
            runtime.broker_waiting = str(err) if isinstance(err, TopicsNotCreatedYet | PermissionError) else repr(err)
            if type(err) not in warned:
                log.warning(_not_connected(err, settings), extra={"bootstrap": settings.kafka_bootstrap_servers, "error": repr(err)})
                warned.add(type(err))
            with suppress(Exception):
                await runtime.broker.stop()
            await asyncio.sleep(delay)


def _not_connected(err: Exception, settings: ServiceSettings) -> str:
    if isinstance(err, TopicsNotCreatedYet):
        return f"{err}; consumers start once they exist, the API and the outbox work meanwhile"
    if isinstance(err, PermissionError):
        return f"{err}; the API and the outbox work meanwhile"
    hint = ""
    if settings.kafka.secured:
        hint = (f" (if it is up: a refused login looks the same; check KAFKA_SECURITY_PROTOCOL and the "
                f"password of principal {settings.kafka.username!r}, and the broker log)")
    return f"kafka not reachable{hint}; the service runs and keeps events in its outbox until it is"


def build_service(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    uow_class: type[UnitOfWork],
    migrations: Path,
    routers: list[APIRouter],
    handlers: dict[type[Event], Handler] | None = None,
    configure: Callable[[FastAPI], None] | None = None,
    keys: auth.KeySource | None = None,
    audit_readers: tuple[str, ...] = ("auditor",),
) -> FastAPI:
    engine = create_engine(settings.db_url, settings.db_schema)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    # What it tells about itself: /metrics (services.common.metrics), traces if an exporter is set (.tracing).
    metrics, tracing = Metrics(settings.service), Tracing.from_settings(settings)
    broker = create_broker(settings, middlewares=[metrics.broker_middleware()])
    relay = OutboxRelay(sessions, settings, lambda: create_producer(settings))
    readers = async_sessionmaker(reading(engine), expire_on_commit=False)
    runtime = ServiceRuntime(settings, engine, sessions, readers, uow_class, broker, relay, consumer=None, metrics=metrics, tracing=tracing)
    if engine.dialect.name == "postgresql":
        # Replicas: an event committed in one process goes out now even if another's relay holds the lock.
        def outbox_written(payload: str | None) -> None:
            if woken_by(payload, settings.db_schema, relay.origin):
                relay.wake()

        runtime.background.append(lambda: listen(settings.db_url, OUTBOX_CHANNEL, outbox_written, name=f"icc-outbox:{settings.db_schema}",
                                                 retry_max_seconds=settings.retry_max_seconds))
    if handlers:
        runtime.consumer = EventConsumer(settings.service, handlers, runtime.unit_of_work, settings.retry_max_seconds, tracing)
        if unlisted := set(runtime.consumer.topics) - set(CONSUMES.get(settings.service, ())):
            raise RuntimeError(
                f"{settings.service} handles events of {sorted(unlisted)}, which contracts/topics.py CONSUMES does not "
                f"list for it: add them there (the broker's ACLs are made from it, so it could not read them)"
            )
        runtime.consumer.subscribe(broker, settings.physical_topic, settings.consumer_group, settings.consumer_batch_size,
                                   f"{settings.consumer_group}-{settings.replica_id}" if settings.replica_id else None)
    metrics.count(relay, runtime.consumer)
    topics = sorted({*PRODUCES.get(settings.service, ()), dead_letter_topic(settings.service), *(runtime.consumer.topics if runtime.consumer else [])})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.service)
        if settings.migrate_on_start:  # else a migration job ran `python -m services.<name> migrate`
            await migrate(engine, settings.db_schema, migrations)
        runtime.tasks = [
            asyncio.create_task(relay.run(), name=f"{settings.service}-outbox-relay"),
            asyncio.create_task(_connect_broker(runtime, topics), name=f"{settings.service}-broker"),
            asyncio.create_task(keep_purging(sessions, settings), name=f"{settings.service}-purge"),
            *(asyncio.create_task(work()) for work in runtime.background),
        ]
        log.info("service started", extra={"service": settings.service, "database": engine.url.render_as_string()})
        try:
            yield
        finally:
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            with suppress(Exception):
                await broker.stop()
            await engine.dispose()
            tracing.shutdown()
            log.info("service stopped", extra={"service": settings.service})

    # FastAPI's own OpenTelemetry stays off: ObserveHttp makes the server spans, with this service's provider.
    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.runtime = runtime
    app.add_middleware(ObserveHttp, metrics=metrics, tracing=tracing)
    install_error_handlers(app)
    verifier = auth.TokenVerifier(
        settings.oidc_issuer,
        settings.oidc_audience,
        keys or auth.JwksKeys.over_http(settings.oidc_issuer, settings.oidc_jwks_url, min_interval=settings.oidc_key_refresh_seconds),
        frozenset(settings.oidc_algorithms),
        settings.oidc_leeway_seconds,
    )
    auth.install(app, verifier)
    app.state.web_sessions = WebSessions(settings, verifier)
    app.include_router(health)
    app.include_router(audit_router(*audit_readers))
    for router in routers:
        app.include_router(router)
    if configure:
        configure(app)
    return app

"""Run one service as a process: `python -m services.<name>`."""

import gc
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from services.common.settings import ServiceSettings


def serve(build_app: Callable[[ServiceSettings], FastAPI], settings: ServiceSettings) -> None:
    app = build_app(settings)
    # The modules, the app and its tables are here for the process's life: frozen, the collector
    # stops re-scanning them, and a larger first generation makes it run less often under load
    # (a batch of 500 events allocates tens of thousands of objects). Together ~15% of a batch.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 50)
    # log_config=None: our JSON logging (set up in the lifespan) is the only format.
    uvicorn.run(app, host=settings.http_host, port=settings.port, log_config=None, access_log=False)

"""Run one service as a process: `python -m services.<name>`."""

from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from services.common.settings import ServiceSettings


def serve(build_app: Callable[[ServiceSettings], FastAPI], settings: ServiceSettings) -> None:
    # log_config=None: our JSON logging (set up in the lifespan) is the only format.
    uvicorn.run(build_app(settings), host=settings.http_host, port=settings.port, log_config=None, access_log=False)

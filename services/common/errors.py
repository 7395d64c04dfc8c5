"""Domain refusals every service shares, mapped once to clear HTTP answers (no state is changed)."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class NotFound(LookupError):
    """The thing asked for does not exist (404)."""


class Conflict(ValueError):
    """The request is valid but the current state forbids it, e.g. signing twice (409)."""


class NotYetKnown(LookupError):
    """A fact this service learns from another service's events has not arrived yet (409, retry)."""


def install_error_handlers(app: FastAPI) -> None:
    async def answer(status: int, err: Exception, **extra: object) -> JSONResponse:
        return JSONResponse({"detail": str(err), **extra}, status_code=status)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, err: NotFound) -> JSONResponse:
        return await answer(404, err)

    @app.exception_handler(Conflict)
    async def conflict(_: Request, err: Conflict) -> JSONResponse:
        return await answer(409, err)

    @app.exception_handler(NotYetKnown)
    async def not_yet_known(_: Request, err: NotYetKnown) -> JSONResponse:
        response = await answer(409, err, retryable=True)
        response.headers["Retry-After"] = "2"
        return response

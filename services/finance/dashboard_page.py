"""GET /dashboard: the page the finance unit keeps open. It renders the snapshot that
/dashboard/stream pushes (server-sent events) after every change: no reload, no polling."""

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["dashboard"])


@cache
def _page() -> str:
    return (Path(__file__).with_name("dashboard.html")).read_text()


@router.get("/dashboard", response_class=HTMLResponse, summary="The live finance dashboard (HTML)")
async def dashboard() -> HTMLResponse:
    return HTMLResponse(_page())

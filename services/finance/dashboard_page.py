"""GET /dashboard: the page the finance unit keeps open. It renders the snapshot that
/dashboard/stream pushes (server-sent events) after every change: no reload, no polling.

A browser signs in first (services/common/login.py): the page and its stream take the session
cookie; roles finance and auditor may see them."""

from functools import cache
from html import escape
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from services.common.auth import Principal, page

router = APIRouter(tags=["dashboard"])

FinanceReader = Annotated[Principal, page("finance", "auditor")]


@cache
def _page() -> str:
    return (Path(__file__).with_name("dashboard.html")).read_text()


@router.get("/dashboard", response_class=HTMLResponse, summary="The live finance dashboard (HTML; sign-in: finance or auditor)")
async def dashboard(principal: FinanceReader) -> HTMLResponse:
    return HTMLResponse(_page().replace("{{username}}", escape(principal.username)))

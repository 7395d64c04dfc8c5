"""`python -m services.portal`: the portal's web server (port 8000 unless HTTP_PORT)."""

import sys

import uvicorn

from services.portal.app import build_app
from services.portal.settings import PortalSettings


def main() -> int:
    settings = PortalSettings()
    # log_config=None: our JSON logging (set up in the lifespan) is the only format.
    uvicorn.run(build_app(settings), host=settings.http_host, port=settings.port, log_config=None, access_log=False)
    return 0


sys.exit(main())

"""The HTTP baseline: a bare FastAPI endpoint served the way the services are served (uvicorn, one
process, no access log), taking the same claim body and answering 201. What `POST /claims`
costs beyond it is travel's work.

    HTTP_PORT=18099 python -m bench.bare
"""

import os
import uuid
from typing import Any

import uvicorn
from fastapi import FastAPI

app = FastAPI(title="bare")


@app.post("/claims", status_code=201)
async def claim(body: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "status": "submitted", "registration_id": body.get("registration_id")}


@app.get("/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["HTTP_PORT"]), log_config=None, access_log=False)

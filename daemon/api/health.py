"""``GET /v1/sys/health``: 200 when the database and the HSM answer, 503 saying which does not."""

from __future__ import annotations

import falcon
import peewee

from ..hsm import HsmError
from ..schema.db import database
from ..services import Services
from .http import PUBLIC


class Health:
    scopes = {"GET": PUBLIC}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = {}
        try:
            database.execute_sql("SELECT 1")
            checks["database"] = {"status": "ok"}
        except peewee.PeeweeException as exc:
            checks["database"] = {"status": "unavailable", "message": f"database unreachable: {exc}"}
        try:
            self.services.hsm.ping()
            checks["hsm"] = {"status": "ok"}
        except HsmError as exc:
            checks["hsm"] = {"status": "unavailable", "message": str(exc)}
        failed = [name for name, check in checks.items() if check["status"] != "ok"]
        body: dict = {"status": "ok" if not failed else "unavailable", "checks": checks}
        if failed:
            code = "hsm_unavailable" if "hsm" in failed else "database_unavailable"
            body["error"] = {"code": code, "message": "; ".join(checks[name]["message"] for name in failed)}
            resp.status = falcon.HTTP_503
        resp.media = body

"""The models this service instance is serving (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from app.serve.auth import require

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", dependencies=[Depends(require("admin"))])
async def serving_models(request: Request) -> dict[str, Any]:
    """Active and shadow version of every model name, as loaded in this instance, and models it refused."""
    store = request.app.state.models
    out = []
    for name, s in sorted(store.by_name.items()):
        for m in (s.active, s.shadow):
            if m is not None:
                out.append(
                    {
                        "name": name,
                        "version": m.version,
                        "status": m.status,
                        "sha256": m.sha256,
                        "feature_set": {"name": m.feature_set, "version": m.feature_set_version},
                        "features": list(m.features),
                        "review_at": m.review_at,
                        "decline_at": m.decline_at,
                    }
                )
    return {"models": out, "refused": store.load_errors}

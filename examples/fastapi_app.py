"""A FastAPI app using phoenixkit: plain ASGI middleware, a rate-limit dependency, /metrics.

Run: ``python examples/fastapi_app.py`` then ``curl -i http://127.0.0.1:8000/items/1``.
Needs ``pip install 'phoenixkit[fastapi,asgi]'``.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from starlette.routing import Route

from phoenixkit.integrations.asgi import (
    CorrelationIdMiddleware,
    GZipMiddleware,
    RateLimitMiddleware,
    TimingMiddleware,
    api_key_header,
    health_app,
)
from phoenixkit.integrations.fastapi import correlation_id, rate_limited
from phoenixkit.integrations.prometheus import PrometheusExporter
from phoenixkit.ratelimit import RateLimiter

global_limiter = RateLimiter("100/minute", name="global")
search_limiter = RateLimiter("3/minute", name="search")
exporter = PrometheusExporter(global_limiter, search_limiter)

app = FastAPI()
# add_middleware wraps in reverse order: the last added is the outermost.
app.add_middleware(GZipMiddleware)
app.add_middleware(RateLimitMiddleware, limiter=global_limiter, exempt=["/health", "/metrics"])
app.add_middleware(TimingMiddleware)
app.add_middleware(CorrelationIdMiddleware)
# Plain ASGI apps as routes (a Route given an object, not a function, calls it as ASGI):
app.router.routes.append(Route("/metrics", exporter.asgi_app()))
app.router.routes.append(Route("/health", health_app()))


@app.get("/items/{item_id}")
async def item(item_id: int, request_id: str = Depends(correlation_id)) -> dict[str, object]:
    return {"item": item_id, "request_id": request_id}


@app.get("/search", dependencies=[Depends(rate_limited(search_limiter, key=api_key_header()))])
async def search(q: str = "") -> dict[str, object]:
    return {"q": q, "results": [f"{q}-{n}" for n in range(200)]}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000, proxy_headers=False)

"""A Flask app using the phoenixkit extension, plus WSGI middleware and /metrics.

Run: ``python examples/flask_app.py`` then ``curl -i http://127.0.0.1:8000/hello``.
Needs ``pip install 'phoenixkit[flask]'``.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify

from phoenixkit.integrations.flask import PhoenixKit
from phoenixkit.integrations.prometheus import PrometheusExporter
from phoenixkit.integrations.wsgi import ETagMiddleware, GZipMiddleware
from phoenixkit.masking.correlation import get_correlation_id
from phoenixkit.ratelimit import RateLimiter

limiter = RateLimiter("5/minute", name="flask")
exporter = PrometheusExporter(limiter)

app = Flask(__name__)
app.config["PHOENIXKIT_EXEMPT"] = ["/metrics"]
kit = PhoenixKit(limiter=limiter)
kit.init_app(app)
app.wsgi_app = GZipMiddleware(ETagMiddleware(app.wsgi_app))  # type: ignore[method-assign]


@app.get("/hello")
def hello() -> Response:
    return jsonify(hello="world", request_id=get_correlation_id())


@app.get("/report")
def report() -> Response:
    return jsonify(rows=list(range(500)))


@app.get("/metrics")
def metrics() -> tuple[str, int, dict[str, str]]:
    return exporter.render(), 200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    make_server("127.0.0.1", 8000, app).serve_forever()

"""A one-file Django site behind PhoenixKitMiddleware, served in a subprocess by the tests.

``python -m tests.integrations.django_site wsgi|asgi PORT`` (from the repository root).
"""

from __future__ import annotations

import sys

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path

from phoenixkit.masking.correlation import get_correlation_id


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(get_correlation_id() or "", content_type="text/plain")


async def async_index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(get_correlation_id() or "", content_type="text/plain")


urlpatterns = [path("", index), path("async", async_index), path("free", index)]


def configure() -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="phoenixkit-tests",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        USE_TZ=True,
        MIDDLEWARE=["phoenixkit.integrations.django.PhoenixKitMiddleware"],
        PHOENIXKIT={
            "RATE_LIMIT": "2/minute",
            "TRUSTED_PROXIES": ["127.0.0.1"],
            "EXEMPT": ["/free"],
            "KEY": "phoenixkit.integrations.wsgi.client_key",
        },
    )
    django.setup()


def main(kind: str, port: int) -> None:
    configure()
    if kind == "asgi":
        import uvicorn
        from django.core.asgi import get_asgi_application

        uvicorn.run(
            get_asgi_application(),
            host="127.0.0.1",
            port=port,
            proxy_headers=False,
            log_level="warning",
            lifespan="off",
        )
    else:
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        from django.core.wsgi import get_wsgi_application

        class Quiet(WSGIRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

        make_server("127.0.0.1", port, get_wsgi_application(), handler_class=Quiet).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

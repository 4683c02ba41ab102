"""The site's 404 and 500 answers: the site's own pages, and JSON under /api/ (docs/api.md).

Django shows its debug pages instead only with DEBUG=1, a developer's explicit choice.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import get_template


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found_message(exception: Exception | None) -> str:
    """The sentence a view gave its Http404, e.g. "No market binance/ethusdt is tracked here";
    empty for a URL that matched nothing or a generic lookup, whose text names code, not things."""
    if type(exception) is not Http404 or not exception.args:
        return ""
    message = exception.args[0]
    if not isinstance(message, str) or message.endswith("matches the given query."):
        return ""
    return message.rstrip(".")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = not_found_message(exception)
    if is_api(request):
        text = message or f"no API document at {request.path}: /api/v1/ lists them"
        return JsonResponse({"error": text, "index": "/api/v1/"}, status=404)
    context = {"message": message, "page_title": f"Not found — {settings.SITE_NAME}"}
    return render(request, "404.html", context, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"error": "server error: it was logged, try again later"}, status=500)
    return HttpResponse(get_template("500.html").render(), status=500)

"""Middleware of the whole site: security headers, and control characters kept out of the app."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

Handler = Callable[[HttpRequest], HttpResponse]


def security_headers(get_response: Handler) -> Handler:
    """Content-Security-Policy and Permissions-Policy on every response (settings.py)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response

    return middleware


def csp_allows_chart_code(view: Handler) -> Handler:
    """For a page that draws Bokeh charts: the policy that lets BokehJS compile the charts'
    formatters (settings.CONTENT_SECURITY_POLICY_CHARTS); inline script stays refused."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response.headers["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY_CHARTS
        return response

    return wrapper


def has_control_character(text: str) -> bool:
    """Whether `text` holds a C0 or C1 control character, NUL and DEL included."""
    return any(unicodedata.category(char) == "Cc" for char in text)


def control_characters_refused(get_response: Handler) -> Handler:
    """A 400 for a path or query with a control character (no URL or option of the site has one;
    PostgreSQL refuses NUL in a query). A cookie holding one is dropped instead, so a damaged
    cookie cannot shut a browser out of the site."""

    def middleware(request: HttpRequest) -> HttpResponse:
        damaged = [k for k, v in request.COOKIES.items() if has_control_character(k + v)]
        for name in damaged:
            del request.COOKIES[name]
        if has_control_character(request.path):
            message = "The address holds a control character, which no page has."
            return refused(request, message, reset_url="/")
        for name, values in request.GET.lists():
            if has_control_character(name + "".join(values)):
                message = "The query holds a control character, which no option takes."
                return refused(request, message, reset_url=request.path)
        return get_response(request)

    return middleware


def refused(request: HttpRequest, message: str, *, reset_url: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": message}, status=400)
    if not hasattr(request, "user"):  # answered before the session and user are read
        request.user = AnonymousUser()
    context = {
        "message": message,
        "reset_url": reset_url,
        "page_title": f"Bad request — {settings.SITE_NAME}",
    }
    return render(request, "400.html", context, status=400)

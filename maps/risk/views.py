"""The planner panel (full page without JS, fragment for htmx) and the saved positions pages."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST, require_safe

from maps import pages as map_pages
from maps.analytics.risk import RiskError
from maps.risk import pages, services
from maps.risk.forms import AlertsForm, planner_form
from maps.risk.selectors import market_snapshot_full, user_positions
from maps.views import bad_query_is_400


@require_safe
@bad_query_is_400
def planner(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
    """The planner for one market: the whole page, or (htmx) the panel, which also puts the
    plan's inputs in the address bar so it can be shared."""
    market = map_pages.market_or_404(exchange=exchange.lower(), symbol=symbol.lower())
    window = map_pages.query_window(request)
    view = "pair" if request.GET.get("view") == "pair" else "plan"
    context = pages.planner_context(
        request, market=market, window=window, query=request.GET, view=view
    )
    if not map_pages.is_partial(request):
        return map_pages.revalidate(render(request, "maps/risk/planner.html", context))
    response = render(request, "maps/risk/_panel.html", context)
    if url := pages.address_bar_url(context, request.GET):
        response.headers["HX-Replace-Url"] = url
    return map_pages.revalidate(response)


@login_required
@require_POST
def planner_save(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
    """Save the planned position (and its alerts) for the signed-in user."""
    market = map_pages.market_or_404(exchange=exchange.lower(), symbol=symbol.lower())
    window = request.POST.get("window", "")
    if window not in settings.LIQSITE_WINDOWS:
        window = settings.LIQSITE_DEFAULT_WINDOW
    back = pages.position_back_url(market, request.POST, window)
    snapshot = market_snapshot_full(market=market, window=window)
    form, alerts = planner_form(request.POST, side_key="plan"), AlertsForm(request.POST)
    if snapshot is None or not form.is_valid() or not alerts.is_valid():
        messages.error(request, pages.save_error(snapshot, form, alerts))
        return redirect(back)
    try:
        plan = services.position_plan(
            market=market, snapshot=snapshot, inputs=form.plan_input(last_close=snapshot.last_close)
        )
        position = services.position_save(
            user=request.user,
            market=market,
            plan=plan,
            window=window,
            note=alerts.cleaned_data["note"],
            alerts=alerts.choice(),
        )
    except RiskError as exc:
        messages.error(request, f"Not saved: {exc}")
        return redirect(back)
    messages.success(request, f"Position saved: {position}.")
    return redirect("maps:position", position.pk)


@login_required
@require_GET
def positions(request: HttpRequest) -> HttpResponse:
    context = pages.positions_context(user=request.user)
    return map_pages.revalidate(render(request, "maps/risk/positions.html", context))


@login_required
@require_GET
def position(request: HttpRequest, pk: int) -> HttpResponse:
    saved = get_object_or_404(user_positions(user=request.user), pk=pk)
    context = {"row": pages.position_row(saved), "alerts": list(saved.alerts.all())}
    return map_pages.revalidate(render(request, "maps/risk/position.html", context))


@login_required
@require_POST
def position_delete(request: HttpRequest, pk: int) -> HttpResponse:
    saved = get_object_or_404(user_positions(user=request.user), pk=pk)
    services.position_delete(position=saved)
    messages.info(request, "Position deleted, with its alerts.")
    return redirect("maps:positions")

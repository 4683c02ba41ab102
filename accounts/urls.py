from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views
from accounts.forms import LoginForm

app_name = "accounts"

auth_urlpatterns = [
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="accounts/login.html",
            authentication_form=LoginForm,
            redirect_authenticated_user=True,
            extra_context={"site_name": settings.SITE_NAME},
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/signup/sent/", views.signup_sent, name="signup_sent"),
    path("accounts/signup/<str:token>/", views.signup_complete, name="signup_complete"),
    path("accounts/profile/", views.profile, name="profile"),
    path("accounts/email/", views.email_change, name="email_change"),
    path("accounts/time-zone/", views.time_zone, name="time_zone"),
    path("accounts/webhook/", views.webhook, name="webhook"),
    path("accounts/webhook/test/", views.webhook_test, name="webhook_test"),
    path("accounts/webhook/docs/", views.webhook_docs, name="webhook_docs"),
    path("accounts/webhook/delete/", views.webhook_delete, name="webhook_delete"),
    path("accounts/password/change/", views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "accounts/password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(
            template_name="accounts/password_change_done.html"
        ),
        name="password_change_done",
    ),
    path(
        "accounts/password/reset/",
        views.PasswordResetView.as_view(extra_email_context={"site_name": settings.SITE_NAME}),
        name="password_reset",
    ),
    path(
        "accounts/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="accounts/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
]

urlpatterns = [
    *auth_urlpatterns,
    path("watchlist/", views.watchlist, name="watchlist"),
    path("watchlist/rows/", views.watchlist_rows, name="watchlist_rows"),
    path("watchlist/toggle/<int:market_id>/", views.watch_toggle, name="watch_toggle"),
    path("watchlist/<int:pk>/remove/", views.watch_remove, name="watch_remove"),
    path("watchlist/<int:watch_pk>/alerts/new/", views.alert_create, name="alert_create"),
    path("watchlist/alerts/", views.alerts, name="alerts"),
    path("watchlist/alerts/<int:pk>/edit/", views.alert_edit, name="alert_edit"),
    path("watchlist/alerts/<int:pk>/delete/", views.alert_delete, name="alert_delete"),
    path("accounts/notifications/", views.notifications, name="notifications"),
    path("accounts/notifications/badge/", views.notification_badge, name="notification_badge"),
    path(
        "accounts/notifications/<int:pk>/read/", views.notification_read, name="notification_read"
    ),
    path(
        "accounts/notifications/read-all/",
        views.notifications_read_all,
        name="notifications_read_all",
    ),
]

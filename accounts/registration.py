"""Sign-up by emailed link, which never tells whether an address has an account.

A sign-up stores a SignupRequest and emails a link to finish it; for an address that already has
an account it emails a reminder instead (the username, log-in and reset links). The visitor sees
the same page, after the same work, either way: the password is hashed and a request stored in
both cases, and the email is sent after the response (accounts/mail.py). Following the link
makes the account, under the chosen username unless someone took it meanwhile.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.mail import Send
from accounts.models import SignupRequest, User


def link_lifetime() -> timedelta:
    """How long the link to finish a sign-up works (as long as a password reset link)."""
    return timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def signup_request_create(
    *, username: str, email: str, password: str, next_url: str, site_url: str
) -> Send:
    """Store the sign-up and return the sending of its email: the link to finish, or the
    reminder of the account that has the address. `site_url` is the address the visitor used
    (as in password reset emails)."""
    SignupRequest.objects.filter(created__lt=timezone.now() - link_lifetime()).delete()
    token = secrets.token_urlsafe(32)
    SignupRequest.objects.create(
        username=username,
        email=email,
        password=make_password(password),
        next_url=next_url,
        token_digest=token_digest(token),
    )
    account = User.objects.filter(email__iexact=email).only("username").first()
    if account is not None:
        context = {
            "username": account.username,
            "login_url": site_url + reverse("accounts:login"),
            "reset_url": site_url + reverse("accounts:password_reset"),
        }
        return partial(signup_email_send, "signup_exists", email, context)
    url = site_url + reverse("accounts:signup_complete", args=[token])
    context = {"username": username, "url": url, "days": link_lifetime().days}
    return partial(signup_email_send, "signup_link", email, context)


def signup_email_send(name: str, email: str, context: dict) -> None:
    context = {**context, "site_name": settings.SITE_NAME}
    subject = render_to_string(f"accounts/email/{name}_subject.txt", context).strip()
    body = render_to_string(f"accounts/email/{name}_body.txt", context)
    send_mail(subject, body, None, [email])


def signup_request_for_token(*, token: str) -> SignupRequest | None:
    """The unexpired sign-up whose link holds `token`."""
    return SignupRequest.objects.filter(
        token_digest=token_digest(token), created__gte=timezone.now() - link_lifetime()
    ).first()


def signup_complete(*, signup: SignupRequest, username: str) -> User:
    """Make the account; IntegrityError if the username or the address was taken meanwhile."""
    with transaction.atomic():
        user = User(username=username, email=signup.email, password=signup.password)
        user.save()
    SignupRequest.objects.filter(email__iexact=signup.email).delete()
    return user


def email_has_account(email: str) -> bool:
    return User.objects.filter(email__iexact=email).exists()

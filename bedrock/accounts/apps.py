from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Who is asking: users' API tokens and the middleware that signs a request in with one."""

    name = "bedrock.accounts"
    label = "accounts"  # django.contrib.auth holds the label "auth"
    verbose_name = "Accounts"

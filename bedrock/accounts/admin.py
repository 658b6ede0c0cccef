from __future__ import annotations

from django.contrib import admin, messages

from bedrock.accounts import services
from bedrock.accounts.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "name",
        "user",
        "created_at",
        "last_used_at",
        "expires_at",
        "read_only",
        "state",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "expires_at", "read_only"]
        return self.get_readonly_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # A token's scope and expiry are fixed when it is made: a new token replaces it.
        return [
            "user",
            "name",
            "prefix",
            "created_at",
            "last_used_at",
            "expires_at",
            "read_only",
            "revoked_at",
        ]

    @admin.display(description="state")
    def state(self, obj: ApiToken) -> str:
        if obj.revoked_at:
            return "revoked"
        return "active" if obj.is_usable else "expired"

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        if change:
            return
        created = services.api_token_create(user=obj.user, name=obj.name, read_only=obj.read_only)
        # Staff may set any expiry, past the lifetime the UI and the API keep to.
        if obj.expires_at:
            ApiToken.objects.filter(pk=created.token.pk).update(expires_at=obj.expires_at)
        obj.pk = created.token.pk
        self.message_user(
            request,
            f"Token created. Copy it now; it will not be shown again: {created.plaintext}",
            messages.WARNING,
        )

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:
        for token in queryset.filter(revoked_at__isnull=True):
            services.api_token_revoke(actor=request.user, token=token)
        self.message_user(request, "Revoked.", messages.SUCCESS)

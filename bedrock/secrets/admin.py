from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils import timezone

from bedrock.secrets import services
from bedrock.secrets.models import Secret


class SecretForm(forms.ModelForm):
    """Write-only. The input is named ``new_value``, not ``value``: no form, however the admin
    builds it, ever binds the stored value, so it is never rendered back or blanked by accident.

    Leave it empty on an existing secret to keep the stored value.
    """

    new_value = forms.CharField(
        label="Value",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        required=False,
        strip=False,
        help_text="Write-only: never shown again. Leave empty to keep the current value.",
    )

    class Meta:
        model = Secret
        fields = ["pipeline", "name"]

    def clean_new_value(self) -> str:
        value = self.cleaned_data.get("new_value", "")
        if not value and self.instance.pk is None:
            raise forms.ValidationError("A new secret needs a value.")
        return value

    def clean(self) -> dict:
        # The same checks as every other way of setting a secret (services.secret_problems).
        cleaned = super().clean()
        name = cleaned.get("name") or self.instance.name
        value = cleaned.get("new_value") or None
        if name:
            problems = services.secret_problems(name=name, value=value)
            for field, message in problems.items():
                target = {"value": "new_value"}.get(field, field)
                self.add_error(target if target in self.fields else None, message)
        return cleaned

    def save(self, commit: bool = True) -> Secret:
        secret = super().save(commit=False)
        if self.cleaned_data.get("new_value"):
            secret.value = self.cleaned_data["new_value"]
            secret.updated_at = timezone.now()
        if commit:
            secret.save()
        return secret


class SecretInline(admin.TabularInline):
    model = Secret
    form = SecretForm
    extra = 0
    fields = ["name", "new_value", "updated_at", "updated_by"]
    readonly_fields = ["updated_at", "updated_by"]


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    form = SecretForm
    list_display = ["name", "pipeline", "updated_at", "updated_by"]
    list_filter = ["pipeline__project"]
    list_select_related = ["pipeline__project", "updated_by"]
    search_fields = ["name", "pipeline__name", "pipeline__project__name"]
    autocomplete_fields = ["pipeline"]
    fields = ["pipeline", "name", "new_value", "created_at", "updated_at", "updated_by"]
    readonly_fields = ["created_at", "updated_at", "updated_by"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # A secret's pipeline and name identify what the run injects; replace, don't move it.
            fields += ["pipeline", "name"]
        return fields

    def save_model(self, request, obj: Secret, form, change: bool) -> None:
        if form.cleaned_data.get("new_value"):
            obj.updated_by = request.user
        super().save_model(request, obj, form, change)

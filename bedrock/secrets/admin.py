from __future__ import annotations

from django import forms
from django.contrib import admin
from django.forms.models import BaseInlineFormSet

from bedrock.actors import Staff
from bedrock.pipelines.models import Pipeline
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
        super().clean()
        cleaned = self.cleaned_data
        name = cleaned.get("name") or self.instance.name
        value = cleaned.get("new_value") or None
        if name:
            problems = services.secret_problems(name=name, value=value)
            for field, message in problems.items():
                target = {"value": "new_value"}.get(field, field)
                self.add_error(target if target in self.fields else None, message)
        return cleaned

    def save(self, commit: bool = True) -> Secret:
        # Never written here: the admin hands the value to services.secret_set, which encrypts,
        # validates and records who set it exactly as every other way of setting a secret does.
        return super().save(commit=False)


def save_secret_formset(actor: Staff, pipeline: Pipeline, formset: BaseInlineFormSet) -> None:
    """Save a pipeline's secret inline through the secret services, and tell the admin's log
    what changed as ``formset.save()`` would."""
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    for row in formset.deleted_forms:
        if row.instance.pk is not None:
            services.secret_delete(actor=actor, pipeline=pipeline, name=row.instance.name)
            formset.deleted_objects.append(row.instance)
    for row in formset.forms:
        if row in formset.deleted_forms or not row.has_changed():
            continue
        secret = _save_secret_row(actor, pipeline, row)
        if row.instance.pk is None:
            formset.new_objects.append(secret)
        else:
            formset.changed_objects.append((secret, row.changed_data))


def _save_secret_row(actor: Staff, pipeline: Pipeline, row: SecretForm) -> Secret:
    name, value = row.cleaned_data.get("name") or row.instance.name, row.cleaned_data["new_value"]
    if row.instance.pk is not None and "name" in row.changed_data:
        # The form has renamed its instance already; the stored row still has the old name.
        old = Secret.objects.get(pk=row.instance.pk)
        # A renamed secret keeps its value unless given a new one: it is moved, not copied.
        secret = services.secret_set(
            actor=actor, pipeline=pipeline, name=name, value=value or old.value
        )
        services.secret_delete(actor=actor, pipeline=pipeline, name=old.name)
        return secret
    if value:
        return services.secret_set(actor=actor, pipeline=pipeline, name=name, value=value)
    return row.instance


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
        value = form.cleaned_data.get("new_value")
        if not value:
            return  # an empty value keeps the stored one; pipeline and name are read-only here
        saved = services.secret_set(
            actor=Staff(request.user), pipeline=obj.pipeline, name=obj.name, value=value
        )
        # The admin's log and redirect are bound to ``obj``.
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj: Secret) -> None:
        services.secret_delete(actor=Staff(request.user), pipeline=obj.pipeline, name=obj.name)

    def delete_queryset(self, request, queryset) -> None:
        for secret in queryset.select_related("pipeline__project"):
            self.delete_model(request, secret)

"""Forms of the web UI. They validate input; the services do the work."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from bedrock.envconfig import parse_duration
from bedrock.models.models import ModelAlias, ModelVersion
from bedrock.pipelines.environment import is_environment_name
from bedrock.pipelines.models import (
    DatedInstalls,
    Pipeline,
    PipelineKind,
    default_max_run_time,
)
from bedrock.secrets.models import secret_name_validator
from bedrock.secrets.services import secret_problems
from bedrock.ui.templatetags.bedrock_ui import run_time_text


class DurationText(forms.CharField):
    """A duration written as Bedrock's settings write it: 90s, 30m, 72h, 7d."""

    def prepare_value(self, value):
        return run_time_text(value) if isinstance(value, timedelta) else value

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        try:
            return parse_duration(value)
        except ValueError:
            raise ValidationError(
                "Write a duration such as 90s, 30m, 72h or 7d.", code="invalid"
            ) from None


class PipelineForm(forms.ModelForm):
    """Create or edit a pipeline. The project is chosen on creation only."""

    max_run_time = DurationText(
        label="Maximum run time",
        help_text="Such as 72h or 7d. Runs past it are stopped and failed.",
    )
    save_anyway = forms.BooleanField(
        required=False,
        label="Save even though the config at the branch head has errors",
    )
    new_model = forms.CharField(
        required=False,
        max_length=100,
        label="Or a new model",
        help_text="Its name: the model is created with the pipeline, in its project.",
    )

    class Meta:
        model = Pipeline
        fields = [
            "project",
            "name",
            "kind",
            "git_url",
            "branch",
            "config_path",
            "model",
            "max_run_time",
            "dated_installs",
            "publish_policy",
        ]
        labels = {
            "git_url": "Repository",
            "config_path": "Config path",
            "dated_installs": "Installs resolve",
            "publish_policy": "Publishes versions from",
        }
        help_texts = {
            "git_url": "https:// or ssh:// URL (or git@host:owner/repo.git) of the repository.",
            "branch": "Runs start from this branch's head unless given another ref.",
            "config_path": "Path of the bedrock.hcl inside the repository.",
            "model": "Training pipelines publish versions of this model.",
        }

    def __init__(self, *args, projects, models, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            del self.fields["project"]
            del self.fields["new_model"]
        else:
            self.fields["max_run_time"].initial = default_max_run_time()
            # The form field Django made for each foreign key is a ModelChoiceField.
            project = cast(forms.ModelChoiceField, self.fields["project"])
            project.queryset = projects
            project.empty_label = None
        model = cast(forms.ModelChoiceField, self.fields["model"])
        model.queryset = models
        model.empty_label = "— none (batch scoring) —"
        self.fields["kind"].widget = forms.RadioSelect(choices=PipelineKind.choices)
        # A post without it (a script written before the choice existed) keeps the default.
        self.fields["dated_installs"].required = False
        self.fields["publish_policy"].required = False
        self.order_fields(
            ["project", "name", "kind", "git_url", "branch", "config_path", "model", "new_model"]
        )

    def clean(self) -> dict:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("new_model") and cleaned.get("model"):
            self.add_error("new_model", "Choose a model or name a new one, not both.")
        elif cleaned.get("new_model") and cleaned.get("kind") == PipelineKind.BATCH_SCORING:
            self.add_error("new_model", "A batch scoring pipeline publishes no model.")
        return cleaned

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]  # Django's own hook, left out of the stubs
        # The pipeline's model clean() asks for is the new one, made when the pipeline is.
        chose_none = not self.data.get(self.add_prefix("model"))
        if self.cleaned_data.get("new_model") and chose_none and "new_model" not in self.errors:
            self.errors.pop("model", None)
            self.cleaned_data["model"] = None

    def clean_dated_installs(self) -> str:
        return self.cleaned_data.get("dated_installs") or DatedInstalls.DEFAULT

    def clean_publish_policy(self) -> str:
        # A post without it keeps what the pipeline has (BRANCH for a new one).
        return self.cleaned_data.get("publish_policy") or self.instance.publish_policy

    def service_fields(self) -> dict:
        """The cleaned values the pipeline services take."""
        names = ["name", "git_url", "branch", "config_path", "kind", "model", "max_run_time"]
        names += ["dated_installs", "publish_policy"]
        return {name: self.cleaned_data[name] for name in names}


def _parse_extra(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not is_environment_name(name):
            raise ValidationError(
                f"Line {number}: write NAME=value, with NAME a letter or '_' followed by "
                f"letters, digits or '_'.",
                code="invalid",
            )
        values[name] = value
    return values


class RunForm(forms.Form):
    """Start a run: a ref, the file's parameters (editable) and, for batch scoring, a version."""

    ref = forms.CharField(
        label="Branch, tag or commit",
        max_length=255,
        help_text="The run is pinned to the commit this resolves to when it starts.",
    )
    extra_parameters = forms.CharField(
        label="More parameters",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "NAME=value, one a line"}),
        help_text="Parameters the file does not declare, as NAME=value, one a line.",
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=200)

    def __init__(
        self,
        *args,
        pipeline: Pipeline,
        parameters: dict[str, str],
        versions,
        aliases=(),
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.parameter_names = list(parameters)
        for name, default in parameters.items():
            self.fields[f"param-{name}"] = forms.CharField(
                label=name, required=False, initial=default, strip=False
            )
        if pipeline.kind == PipelineKind.BATCH_SCORING:
            self.picker = _ModelPicker(list(versions), list(aliases))
            self.fields["model_version"] = self.picker
            if not self.initial.get("model_version"):
                self.initial["model_version"] = self.picker.default()
        self.order_fields(["ref", "model_version"])

    def clean_model_version(self) -> ModelVersion | str | None:
        picked = self.cleaned_data.get("model_version") or ""
        if "@" in picked:  # an alias, resolved when the run is created
            return picked
        return self.picker.versions.get(picked)

    def model_choice(self) -> tuple[int | None, str | None]:
        """What the run scores with: a version's id, or an alias."""
        picked = self.cleaned_data.get("model_version")
        if isinstance(picked, str):
            return None, picked
        return (picked.pk if picked is not None else None), None

    def parameter_fields(self):
        return [self[f"param-{name}"] for name in self.parameter_names]

    def clean_extra_parameters(self) -> dict[str, str]:
        return _parse_extra(self.cleaned_data.get("extra_parameters") or "")

    def parameters(self) -> dict[str, str]:
        # A parameter the page did not show (its config was still being read) was not sent: it
        # keeps the file's default rather than becoming an empty string.
        values = {
            name: self.cleaned_data.get(f"param-{name}", "")
            for name in self.parameter_names
            if f"param-{name}" in self.data
        }
        values.update(self.cleaned_data.get("extra_parameters") or {})
        return values


class _ModelPicker(forms.ChoiceField):
    """The project's aliases (``churn@production → v3``), then its versions, newest first."""

    def __init__(self, versions: list[ModelVersion], aliases: list[ModelAlias]) -> None:
        self.versions = {str(version.pk): version for version in versions}
        self.aliases = [str(alias) for alias in aliases]
        by_version = [(pk, _version_label(version)) for pk, version in self.versions.items()]
        choices: list[Any] = by_version
        if aliases:
            by_alias = [(str(alias), f"{alias} → v{alias.version.number}") for alias in aliases]
            choices = [
                ("Aliases, resolved when the run starts", by_alias),
                ("Versions", by_version),
            ]
        super().__init__(
            choices=choices,
            label="Model version",
            help_text="It is unpacked into /artefact before the steps start. An alias names its "
            "version when the run starts, and a rerun uses that same version.",
            error_messages={
                "required": "Choose the model version to score with.",
                "invalid_choice": "Choose one of the aliases or versions listed.",
            },
        )

    def default(self) -> str | None:
        """The ``production`` alias when one model has it, else the newest version."""
        production = [alias for alias in self.aliases if alias.endswith("@production")]
        if len(production) == 1:
            return production[0]
        return next(iter(self.versions), None)


def _version_label(version: ModelVersion) -> str:
    made = version.created_at.strftime("%Y-%m-%d %H:%M")
    run = version.run
    return (
        f"{version.model.name} v{version.number} — {made} — "
        f"run #{run.number} of {run.pipeline.name} at {run.commit_sha[:7]}"
    )


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never writes a value back into the page."""

    def format_value(self, value):
        return None


class SecretForm(forms.Form):
    """Set or replace a secret. Neither value field is ever rendered with a value."""

    name = forms.CharField(
        max_length=200,
        validators=[secret_name_validator],
        help_text="An environment variable name, such as DB_PASSWORD.",
    )
    value = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    multiline_value = forms.CharField(
        required=False,
        strip=False,
        label="Or a multi-line value",
        widget=WriteOnlyTextarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
        help_text="For an SSH key or a JSON document.",
    )

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        one, many = cleaned.get("value") or "", cleaned.get("multiline_value") or ""
        if one and many:
            raise ValidationError("Give the value in one of the two fields, not both.")
        if not one and not many:
            raise ValidationError("Give the secret a value.")
        cleaned["secret_value"] = many or one
        if cleaned.get("name"):
            # The service's checks, shown on the field the value was given in.
            problems = secret_problems(name=cleaned["name"], value=cleaned["secret_value"])
            for field, message in problems.items():
                self.add_error("multiline_value" if field == "value" and many else field, message)
        return cleaned


EXPIRY_DAYS = (7, 30, 90, 365)


class TokenForm(forms.Form):
    """A new token's name, expiry and scope; ``expires_at`` is worked out from the choice."""

    name = forms.CharField(
        max_length=100,
        required=False,
        help_text="What the token is for, such as 'Airflow nightly scoring'.",
    )
    # Not required: a post without it (a script written before the choice existed) gets the
    # token it got then, one that never expires.
    expires = forms.ChoiceField(label="Expires", initial="90", required=False)
    expires_on = forms.DateField(
        required=False,
        label="On this date",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="With 'On a date': the token stops working as that day begins.",
    )
    read_only = forms.BooleanField(
        required=False,
        label="Read-only: queries and downloads, never a change",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        longest = settings.BEDROCK_TOKEN_MAX_LIFETIME
        days = [(str(n), f"In {n} days") for n in EXPIRY_DAYS if timedelta(days=n) <= longest]
        choices = [("never", "Never"), *days, ("date", "On a date")]
        self.fields["expires"].choices = choices  # type: ignore[attr-defined]  # a ChoiceField

    def clean(self) -> dict:
        super().clean()
        cleaned = self.cleaned_data
        choice = cleaned.get("expires")
        if choice == "date":
            day = cleaned.get("expires_on")
            if day is None:
                self.add_error("expires_on", "Choose the date the token stops working.")
            else:
                midnight = datetime.combine(day, time.min)
                cleaned["expires_at"] = timezone.make_aware(midnight)
        elif choice and choice != "never":
            cleaned["expires_at"] = timezone.now() + timedelta(days=int(choice))
        return cleaned

"""Fill ``ref`` and ``branch`` of the versions published before they were recorded, from their
training runs, by the rule ``model_version_publish`` follows (``version_branch``)."""

from __future__ import annotations

from django.db import migrations


def backfill(apps, schema_editor) -> None:
    ModelVersion = apps.get_model("models", "ModelVersion")
    versions = ModelVersion.objects.filter(ref="").select_related("run__pipeline")
    for version in versions.iterator():
        ref, branch = version.run.ref, version.run.pipeline.branch
        version.ref = ref
        version.branch = branch if ref in (branch, f"refs/heads/{branch}") else ""
        version.save(update_fields=["ref", "branch"])


class Migration(migrations.Migration):
    dependencies = [
        ("models", "0004_registry"),
        ("pipelines", "0004_publish_policy"),
        ("runs", "0008_model_alias_and_output_archive"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]

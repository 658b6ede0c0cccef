# Lists read runs newest first, a page at a time, alone, by pipeline, by status or both: one index
# in that order per filter. They replace the single-column indexes of status and created_at.

import django.utils.timezone
from django.db import migrations, models

STATUSES = ("Accepted", "Rejected", "Queued", "Running", "Succeeded", "Failed", "Stopping")
STATUSES += ("Stopped", "Unknown")


def newest(*fields: str) -> list[str]:
    return [*fields, "-created_at", "-id"]


class Migration(migrations.Migration):
    dependencies = [("runs", "0010_run_branch")]

    operations = [
        migrations.AlterField(
            model_name="run",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name="run",
            name="status",
            field=models.CharField(
                choices=[(status, status) for status in STATUSES],
                default="Accepted",
                max_length=16,
            ),
        ),
        migrations.AddIndex("run", models.Index(fields=newest(), name="run_newest")),
        migrations.AddIndex(
            "run", models.Index(fields=newest("pipeline"), name="run_pipeline_newest")
        ),
        migrations.AddIndex("run", models.Index(fields=newest("status"), name="run_status_newest")),
        migrations.AddIndex(
            "run",
            models.Index(fields=newest("pipeline", "status"), name="run_pipeline_status_newest"),
        ),
    ]

"""API tokens move to the accounts app: the table is renamed, its rows and indexes kept.

The model leaves this app's state only; ``accounts.0001_initial`` takes it over without touching
the database. ``AlterModelTable`` renames the table on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("secrets", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name="ApiToken", table="accounts_apitoken"),
            ],
            state_operations=[
                migrations.DeleteModel(name="ApiToken"),
            ],
        ),
    ]

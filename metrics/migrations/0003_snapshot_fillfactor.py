"""Half-filled pages for the snapshots on PostgreSQL.

Every recompute stamps computed_at on each snapshot it leaves unchanged (the
nightly run: nearly all of them). With room left in the page, PostgreSQL
writes the new row version beside the old one without touching an index (a
HOT update) and prunes the old one on its own: no index churn, no table that
swells by one dead row per customer per night until vacuum comes.
"""

from django.db import migrations


def fillfactor_set(value):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE metrics_customersnapshot SET (fillfactor = {int(value)})")

    return apply


class Migration(migrations.Migration):
    dependencies = [("metrics", "0002_snapshot_days_since_at_read")]

    operations = [migrations.RunPython(fillfactor_set(50), fillfactor_set(100))]

"""The table the full roll-up rebuild's connections aggregate into, on PostgreSQL.

Each connection commits its share of the days here; the rebuilding
transaction then moves every row into metrics_metricrollup with one
INSERT … SELECT (jsonb copied as stored) and empties it. Unlogged: its rows
live for the length of one rebuild, and a crash that loses them loses nothing.
"""

from django.db import migrations

CREATE = """
CREATE UNLOGGED TABLE metrics_rollup_build (
    part smallint NOT NULL,
    day date NOT NULL,
    dimension varchar(8) NOT NULL,
    key varchar(64) NOT NULL,
    metric varchar(32) NOT NULL,
    n integer NOT NULL,
    total double precision NOT NULL,
    total2 double precision NOT NULL,
    hits integer NOT NULL,
    hits2 integer NOT NULL,
    "values" jsonb
)
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP TABLE metrics_rollup_build")


class Migration(migrations.Migration):
    dependencies = [("metrics", "0003_snapshot_fillfactor")]

    operations = [migrations.RunPython(create, drop)]

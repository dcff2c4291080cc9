"""Set-based inserts and updates for ingestion's hot path.

For a thousand rows, Django's `bulk_create`/`bulk_update` spend more time
compiling one placeholder per value (and, for updates, a CASE per column)
than PostgreSQL spends storing them. On PostgreSQL these send one array per
column instead: `INSERT … SELECT FROM unnest(…)` and `UPDATE … FROM
unnest(…)`, a fixed number of parameters whatever the batch size (bound
server-side: see DATABASES in crm/settings.py). Other databases get Django's
own methods, which behave the same.
"""

from django.db import connection, models


def _column_type(field):
    return field.target_field.db_type(connection) if field.is_relation else field.db_type(connection)


def _arrays(fields, objs, *, adding):
    arrays = []
    for field in fields:
        if _passes_through(field):
            # psycopg adapts these Python values itself; Django's per-value preparation is what costs here.
            attname = field.attname
            arrays.append([getattr(obj, attname) for obj in objs])
        else:
            arrays.append([field.get_db_prep_save(field.pre_save(obj, adding), connection) for obj in objs])
    return arrays


def _passes_through(field):
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return False
    return isinstance(field, (models.CharField, models.TextField, models.IntegerField, models.FloatField,
                              models.BooleanField, models.DateTimeField, models.ForeignKey))


def rows_insert(model, objs):
    """Insert `objs` (fresh instances of `model`) and set their primary keys, like `bulk_create`."""
    if not objs:
        return objs
    if connection.vendor != "postgresql":
        return model.objects.bulk_create(objs)
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    sql = "INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) RETURNING {pk}".format(
        table=quote(meta.db_table),
        columns=", ".join(quote(f.column) for f in fields),
        arrays=", ".join(f"%s::{_column_type(f)}[]" for f in fields),
        pk=quote(meta.pk.column),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _arrays(fields, objs, adding=True))
        ids = [row[0] for row in cursor.fetchall()]
    # INSERT … SELECT returns rows in the order unnest produced them, which is the order given.
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


def rows_update(model, objs, field_names):
    """Write `field_names` of saved `objs` in one statement, like `bulk_update`."""
    if not objs:
        return 0
    if connection.vendor != "postgresql":
        return model.objects.bulk_update(objs, field_names)
    meta = model._meta
    fields = [meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    columns = [quote(meta.pk.column)] + [quote(f.column) for f in fields]
    sql = (
        "UPDATE {table} SET {assignments} FROM unnest({arrays}) AS v({columns}) WHERE {table}.{pk} = v.{pk}"
    ).format(
        table=quote(meta.db_table),
        assignments=", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields),
        arrays=", ".join(f"%s::{_column_type(f)}[]" for f in [meta.pk, *fields]),
        columns=", ".join(columns),
        pk=quote(meta.pk.column),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _arrays([meta.pk, *fields], objs, adding=False))
        return cursor.rowcount

"""Set-based inserts and updates for ingestion's hot path.

For a thousand rows, Django's `bulk_create`/`bulk_update` spend more time
compiling one placeholder per value (and, for updates, a CASE per column)
than PostgreSQL spends storing them. On PostgreSQL these send one array per
column instead: `INSERT … SELECT FROM unnest(…)` and `UPDATE … FROM
unnest(…)`, a fixed number of parameters whatever the batch size (bound
server-side: see DATABASES in crm/settings.py). The arrays travel in
PostgreSQL's binary format (`%b`): psycopg's text format escapes every
element with a regular expression, five times slower for a thousand rows.
Other databases get Django's own methods, which behave the same.
"""

from datetime import datetime

from django.db import connection, models
from django.utils import timezone


def _column_type(field):
    return field.target_field.db_type(connection) if field.is_relation else field.db_type(connection)


def _arrays(fields, objs, *, adding):
    return [values for values, _constant in _columns(fields, objs, adding=adding, constants=False)]


def _columns(fields, objs, *, adding, constants=True):
    """(values, constant) per field: the database values of `objs`, and whether they are all one value.

    With `constants` off nobody asks, so no column is scanned for it (constant stays False but
    for the batch's own timestamps).
    """
    columns = []
    now = None
    for field in fields:
        if _stamped(field, adding):
            # One clock reading for the whole batch, as a single UPDATE's now() would give.
            now = now or timezone.now()
            for obj in objs:
                setattr(obj, field.attname, now)
            columns.append(([now] * len(objs), True))
        elif _passes_through(field):
            # psycopg adapts these Python values itself; Django's per-value preparation is what costs here.
            attname = field.attname
            values = [getattr(obj, attname) for obj in objs]
            columns.append((values, constants and _same(values)))
        else:
            values = [field.pre_save(obj, adding) for obj in objs]
            if constants and _same(values, empty_only=True):
                columns.append(([field.get_db_prep_save(values[0], connection)] * len(objs), True))
            else:
                columns.append(([field.get_db_prep_save(value, connection) for value in values], False))
    return columns


def _same(values, *, empty_only=False):
    """Whether every value is certainly stored as the first one is.

    Equal is not enough: 1 == True == 1.0, and 0.0 == -0.0. Plain values of
    one type qualify; containers (JSON) only when all are empty.
    """
    first = values[0]
    if first is None:
        return all(value is None for value in values)
    kind = type(first)
    if empty_only:
        return kind in (dict, list) and not first and all(type(value) is kind and not value for value in values)
    if kind not in (str, int, bool, datetime):
        return False
    return all(type(value) is kind and value == first for value in values)


def _stamped(field, adding):
    return type(field) is models.DateTimeField and (field.auto_now or (adding and field.auto_now_add))


def _passes_through(field):
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return False
    return isinstance(field, (models.CharField, models.TextField, models.IntegerField, models.FloatField,
                              models.BooleanField, models.DateTimeField, models.ForeignKey))


def rows_insert(model, objs):
    """Insert `objs` (fresh instances of `model`) and set their primary keys, like `bulk_create`.

    A column holding one value for every row (a source, an empty subject, the
    insert time) is sent once rather than as an array of copies.
    """
    if not objs:
        return objs
    if connection.vendor != "postgresql":
        return model.objects.bulk_create(objs)
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    selected, scalars, arrays, names = [], [], [], []
    for position, (field, (values, constant)) in enumerate(zip(fields, _columns(fields, objs, adding=True))):
        if constant:
            selected.append(f"%b::{_column_type(field)}")
            scalars.append(values[0])
        else:
            selected.append(f"v.c{position}")
            names.append(f"c{position}")
            arrays.append((f"%b::{_column_type(field)}[]", values))
    source = (
        "unnest({}) AS v({})".format(", ".join(cast for cast, _ in arrays), ", ".join(names)) if arrays
        else "generate_series(1, %b::integer)"
    )
    sql = "INSERT INTO {table} ({columns}) SELECT {selected} FROM {source} RETURNING {pk}".format(
        table=quote(meta.db_table),
        columns=", ".join(quote(f.column) for f in fields),
        selected=", ".join(selected),
        source=source,
        pk=quote(meta.pk.column),
    )
    params = scalars + ([values for _, values in arrays] if arrays else [len(objs)])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
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
        arrays=", ".join(f"%b::{_column_type(f)}[]" for f in [meta.pk, *fields]),
        columns=", ".join(columns),
        pk=quote(meta.pk.column),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _arrays([meta.pk, *fields], objs, adding=False))
        return cursor.rowcount


def instance_factory(model):
    """`build(**values)`: a new `model(**values)` by the constructor's positional path, twice as fast.

    Values are given by attribute name (`customer_id`, not `customer`); fields
    not given get their defaults, a callable default called for each instance.
    """
    fields = model._meta.concrete_fields
    positions = {field.attname: position for position, field in enumerate(fields)}
    fixed = [None if field.has_default() and callable(field.default) else field.get_default() for field in fields]
    called = [(position, field.default) for position, field in enumerate(fields)
              if field.has_default() and callable(field.default)]

    def build(**values):
        row = fixed.copy()
        for position, default in called:
            row[position] = default()
        for name, value in values.items():
            row[positions[name]] = value
        return model(*row)

    return build


def select_list(model, alias):
    """Every concrete column of `model`, qualified by `alias`, in the order `rows_fetch` expects."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


def rows_fetch(model, sql, params):
    """Instances of `model` from raw SQL that selects `select_list(model, …)`.

    What `Model.objects.raw()` gives, at a third of its cost per row: the
    values go to the model's positional constructor, and only the columns
    whose values need converting (JSON; dates on SQLite) are converted. On
    PostgreSQL the rows come in binary format, which psycopg's C loaders
    read (Django's own loader for timestamps parses text in Python) and in
    which jsonb arrives decoded.
    """
    binary = connection.vendor == "postgresql"
    converters = []
    for position, field in enumerate(model._meta.concrete_fields):
        if binary and isinstance(field, models.JSONField):
            continue
        column = field.get_col(model._meta.db_table)
        for convert in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
            converters.append((position, convert, column))
    with connection.cursor() as cursor:
        if binary:
            from psycopg import pq

            cursor.cursor.format = pq.Format.BINARY
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    objs = []
    for row in rows:
        if converters:
            row = list(row)
            for position, convert, column in converters:
                row[position] = convert(row[position], column, connection)
        objs.append(model.from_db(connection.alias, None, row))
    return objs

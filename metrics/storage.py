"""Bulk reads and writes of the recompute, fast on PostgreSQL and plain ORM elsewhere.

On PostgreSQL the recompute is bound by moving rows, so it bypasses the ORM:
raw psycopg cursors in binary format with psycopg's C loaders (Django's
time-zone loader parses every timestamp in Python, about 10 µs each), one
`= ANY(%s)` array parameter instead of a thousand placeholders, and COPY for
writes. It runs on Django's own connection, inside the caller's transaction.
Every other database takes the ORM path; both return the same tuples.
"""

import bisect
import json
import operator
import queue
import threading

import psycopg
from django.db import IntegrityError, connection, transaction
from psycopg.pq import Format
from psycopg.types.json import Jsonb

from interactions.models import Conversation, Interaction

_OIDS = {name: psycopg.postgres.types[name].oid for name in ("timestamptz", "jsonb", "json")}


def is_postgres():
    return connection.vendor == "postgresql"


def _cursor():
    """A binary psycopg cursor on Django's connection with psycopg's own (C) loaders for times and JSON."""
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    cursor.format = Format.BINARY
    for name, oid in _OIDS.items():
        cursor.adapters.register_loader(oid, psycopg.adapters.get_loader(oid, Format.BINARY))
    return cursor


class IdRange(tuple):
    """(first, last) ids, inclusive: the full recompute reads by id range (an index range scan) instead of a list."""

    def __new__(cls, first, last):
        return super().__new__(cls, (first, last))


def _match(column, values):
    """(SQL condition, params) for `column` in `values` (a list, or an IdRange)."""
    if isinstance(values, IdRange):
        return f"{column} BETWEEN %(first)s AND %(last)s", {"first": values[0], "last": values[1]}
    return f"{column} = ANY(%(ids)s)", {"ids": list(values)}


def orm_match(field, values):
    """ORM filter kwargs for `field` in `values` (a list, or an IdRange)."""
    if isinstance(values, IdRange):
        return {f"{field}__gte": values[0], f"{field}__lte": values[1]}
    return {f"{field}__in": list(values)}


def fetch(sql, params, *, shared_json=False):
    with _cursor() as cursor:
        if shared_json:
            cursor.adapters.register_loader(_OIDS["jsonb"], _SharedJsonbLoader)
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()


class _SharedJsonbLoader(psycopg.adapt.Loader):
    """Binary jsonb parsed once per distinct value: equal documents come back as the SAME object (read-only!).

    The stored rows the recompute compares against repeat a few values
    (a journey's channels) hundreds of thousands of times.
    """

    format = Format.BINARY

    def __init__(self, oid, context=None):
        super().__init__(oid, context)
        self.parsed = {}

    def load(self, data):
        data = bytes(data)
        value = self.parsed.get(data)
        if value is None:
            if data[:1] != b"\x01":
                raise psycopg.DataError(f"unknown jsonb binary version: {data[:1]!r}")
            value = self.parsed[data] = json.loads(data[1:])
        return value


# --- interactions ----------------------------------------------------------------------------

INTERACTIONS_SQL = """
SELECT i.id, i.customer_id, i.conversation_id, i.channel, i.kind, i.direction, i.author_type, i.occurred_at,
       COALESCE(i.sentiment, a.sentiment),
       COALESCE(NULLIF(i.intent, ''), a.intent, ''),
       i.incident_at,
       CASE WHEN i.kind = 'survey' THEN i.data #>> '{survey,kind}' END,
       CASE WHEN i.kind = 'survey' AND jsonb_typeof(i.data #> '{survey,score}') = 'number'
            THEN (i.data #>> '{survey,score}')::numeric::int END,
       CASE WHEN i.kind = 'survey' THEN i.data #>> '{survey,respondent}' END,
       CASE WHEN i.kind = 'event' THEN i.data ->> 'mood' END,
       CASE WHEN i.kind = 'call' AND jsonb_typeof(i.data -> 'duration_seconds') = 'number'
            THEN (i.data ->> 'duration_seconds')::float8 END,
       (i.direction = 'inbound' AND i.author_type = 'customer' AND i.kind IN ('message', 'comment', 'call')
        AND a.interaction_id IS NULL AND (i.sentiment IS NULL OR (%(rules)s AND i.intent = '')) AND i.body <> '')
FROM interactions_interaction i
LEFT JOIN metrics_textanalysis a ON a.interaction_id = i.id
WHERE {where}
ORDER BY i.customer_id, i.occurred_at, i.id
"""


def interaction_rows(customer_ids, rules_exist):
    """Rows in `metrics.compute` I_* order, by customer then time."""
    if is_postgres():
        where, params = _match("i.customer_id", customer_ids)
        return fetch(INTERACTIONS_SQL.replace("{where}", where), {**params, "rules": bool(rules_exist)})
    from metrics.services import interaction_rows_queryset

    return list(interaction_rows_queryset(customer_ids=customer_ids, rules_exist=rules_exist))


CONVERSATIONS_SQL = """
SELECT id, customer_id, opened_at, resolved_at, reopen_count, channels ->> 0
FROM interactions_conversation WHERE {where} ORDER BY customer_id, opened_at, id
"""


def conversation_rows(customer_ids):
    """[(id, customer_id, opened_at, resolved_at, reopen_count, first channel or None)]."""
    if is_postgres():
        where, params = _match("customer_id", customer_ids)
        return fetch(CONVERSATIONS_SQL.replace("{where}", where), params)
    return [
        (pk, customer_id, opened_at, resolved_at, reopen_count, channels[0] if channels else None)
        for pk, customer_id, opened_at, resolved_at, reopen_count, channels in Conversation.objects.filter(
            **orm_match("customer_id", customer_ids)).order_by("customer_id", "opened_at", "id").values_list(
            "id", "customer_id", "opened_at", "resolved_at", "reopen_count", "channels")
    ]


def bodies(interaction_ids):
    return dict(Interaction.objects.filter(pk__in=interaction_ids).values_list("pk", "body"))


# --- the metrics tables ----------------------------------------------------------------------


ORM_BATCH = 900


def rows_of(model, fields, key, values):
    """[(key, *fields)] of the rows whose `key` is in `values`, to compare with: JSON values may be shared objects."""
    if is_postgres():
        table = model._meta.db_table
        columns = ", ".join(model._meta.get_field(name).column for name in (key, *fields))
        where, params = _match(model._meta.get_field(key).column, values)
        return fetch(f"SELECT {columns} FROM {table} WHERE {where}", params, shared_json=True)
    if isinstance(values, IdRange):
        return list(model.objects.filter(**orm_match(key, values)).order_by().values_list(key, *fields))
    # Batches: SQLite caps the number of parameters of one statement.
    values = list(values)
    return [
        row
        for start in range(0, len(values), ORM_BATCH)
        for row in model.objects.filter(**orm_match(key, values[start:start + ORM_BATCH])).order_by().values_list(
            key, *fields)
    ]


def _columns(model, fields):
    return [model._meta.get_field(name).column for name in fields]


def _json_fields(model, fields):
    from django.db.models import JSONField

    return {index for index, name in enumerate(fields) if isinstance(model._meta.get_field(name), JSONField)}


def _types(model, fields):
    """The PostgreSQL type of each field's column, for binary COPY ("varchar(32)" is "varchar")."""
    types = []
    for name in fields:
        field = model._meta.get_field(name)
        db_type = (field.target_field if field.is_relation else field).db_type(connection)
        types.append(db_type.split("(")[0])
    return types


def _copy(cursor, table, columns, types, rows, json_positions):
    """COPY rows in binary: psycopg's C dumpers write times and floats several times faster than as text."""
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            if json_positions:
                row = list(row)
                for index in json_positions:
                    row[index] = Jsonb(row[index])
            copy.write_row(row)


def insert(model, fields, rows):
    """Insert rows (tuples in `fields` order); COPY on PostgreSQL."""
    if not rows:
        return
    if is_postgres():
        with connection.cursor() as django_cursor:
            _copy(django_cursor.cursor, model._meta.db_table, _columns(model, fields), _types(model, fields), rows,
                  _json_fields(model, fields))
        return
    model.objects.bulk_create([model(**dict(zip(fields, row))) for row in rows], batch_size=500)


def upsert(model, key, fields, rows):
    """Insert or update rows (tuples in (key, *fields) order) by their primary key `key`."""
    if not rows:
        return
    if is_postgres():
        table = model._meta.db_table
        columns = _columns(model, (key, *fields))
        staging = f"staging_{table}"
        with connection.cursor() as django_cursor:
            cursor = django_cursor.cursor
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table}) ON COMMIT DELETE ROWS")
            cursor.execute(f"TRUNCATE {staging}")
            _copy(cursor, staging, columns, _types(model, (key, *fields)), rows,
                  {i + 1 for i in _json_fields(model, fields)})
            updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in columns[1:])
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {staging} "
                f"ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}"
            )
        return
    model.objects.bulk_create(
        [model(**dict(zip((key, *fields), row))) for row in rows],
        update_conflicts=True, unique_fields=[key], update_fields=list(fields), batch_size=500,
    )


def insert_new(model, key, fields, rows):
    """Insert rows (tuples in (key, *fields) order) not stored yet: a plain COPY, cheaper than `upsert`.

    A row stored meanwhile after all (a conversation moved to this customer by a
    merge, a race) rolls the COPY back to its savepoint and the rows are upserted.
    """
    if not rows:
        return
    try:
        with transaction.atomic():
            insert(model, (key, *fields), rows)
    except (IntegrityError, psycopg.errors.IntegrityError):  # COPY runs on psycopg's cursor, unwrapped
        upsert(model, key, fields, rows)


def delete_where(model, key, values):
    """DELETE the rows whose `key` is in `values` (one array parameter on PostgreSQL)."""
    values = list(values)
    if not values:
        return
    if is_postgres():
        with connection.cursor() as django_cursor:
            django_cursor.cursor.execute(
                f"DELETE FROM {model._meta.db_table} WHERE {model._meta.get_field(key).column} = ANY(%s)", [values],
                prepare=False)
        return
    model.objects.filter(**{f"{key}__in": values}).delete()


def update_where(model, key, values, **assignments):
    """UPDATE the rows whose `key` is in `values`, setting plain column values."""
    values = list(values)
    if not values:
        return
    if is_postgres():
        sets = ", ".join(f"{model._meta.get_field(name).column} = %s" for name in assignments)
        with connection.cursor() as django_cursor:
            django_cursor.cursor.execute(
                f"UPDATE {model._meta.db_table} SET {sets} WHERE {model._meta.get_field(key).column} = ANY(%s)",
                [*assignments.values(), values])
        return
    model.objects.filter(**{f"{key}__in": values}).update(**assignments)


def existing_live_customers(ids):
    """The ids among these that are live (not merged away) customers."""
    from customers.models import Customer

    if is_postgres():
        return {row[0] for row in fetch(
            "SELECT id FROM customers_customer WHERE id = ANY(%(ids)s) AND merged_into_id IS NULL", {"ids": list(ids)})}
    return set(Customer.objects.filter(pk__in=ids, merged_into__isnull=True).values_list("pk", flat=True))


STREAM_INTERACTIONS_SQL = INTERACTIONS_SQL.replace("{where}", "i.customer_id >= %(lo)s AND i.customer_id < %(hi)s")
STREAM_CONVERSATIONS_SQL = CONVERSATIONS_SQL.replace("{where}", "customer_id >= %(lo)s AND customer_id < %(hi)s")


def chunk_weights(chunk_size, chunks):
    """Each chunk's estimated share of the interactions, from PostgreSQL's statistics (free to read).

    Customers are far from even: the oldest ids hold the most history. The
    most common customer ids count with their frequencies, the rest of the
    histogram's equal-depth buckets with theirs; no statistics yet (a table
    never analysed) gives every chunk the same weight.
    """
    weights = [0.0] * chunks
    with _cursor() as cursor:
        cursor.execute(
            "SELECT most_common_vals::text::bigint[], most_common_freqs, histogram_bounds::text::bigint[], null_frac "
            "FROM pg_stats WHERE schemaname = current_schema() AND tablename = %s AND attname = 'customer_id'",
            [Interaction._meta.db_table])
        found = cursor.fetchone()
    if not found:
        return [1.0] * chunks
    common, frequencies, bounds, null_frac = found
    for value, frequency in zip(common or (), frequencies or ()):
        weights[min(chunks - 1, value // chunk_size)] += frequency
    if bounds and len(bounds) > 1:
        rest = max(0.0, 1.0 - null_frac - sum(frequencies or ())) / (len(bounds) - 1)
        for low, high in zip(bounds, bounds[1:]):
            weights[min(chunks - 1, (low + high) // 2 // chunk_size)] += rest
    return weights if sum(weights) > 0 else [1.0] * chunks


def stream_chunks(chunk_size, rules_exist, chunks):
    """Yield (chunk, interaction rows, conversation rows) for each chunk of the range `chunks` from ONE pass over
    each table (over the customer ids of those chunks).

    PostgreSQL only. Reading a chunk by id range would touch most pages of a
    table not clustered by customer once per chunk; this reads each table
    once, in (customer, time) order, through server-side cursors on a
    connection of its own (one snapshot for the whole pass), while the
    caller writes and commits chunk by chunk on Django's connection.

    The reading runs in a thread of its own, at most two chunks ahead: while
    PostgreSQL sorts and sends the next rows (psycopg waits without the GIL),
    the caller computes and writes the current chunk. Memory: three chunks'
    rows at most.
    """
    from django.db import connections

    results = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                results.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def read():
        reader = connections.create_connection("default")
        try:
            reader.ensure_connection()
            pg = reader.connection
            with pg.transaction():
                ids = {"lo": chunks.start * chunk_size, "hi": chunks.stop * chunk_size}
                interactions = _pages(pg, "metrics_stream_interactions", STREAM_INTERACTIONS_SQL,
                                      {**ids, "rules": bool(rules_exist)})
                conversations = _pages(pg, "metrics_stream_conversations", STREAM_CONVERSATIONS_SQL, ids)
                for chunk in chunks:
                    end = (chunk + 1) * chunk_size
                    if not put((chunk, interactions.take_below(end), conversations.take_below(end))):
                        return
            put(None)
        except BaseException as exc:  # handed to the caller, who raises it
            put(exc)
        finally:
            reader.close()

    thread = threading.Thread(target=read, name="metrics-stream", daemon=True)
    thread.start()
    try:
        while True:
            item = results.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class _pages:
    """Rows of `sql` (ordered by its second column, the customer) through a server-side cursor, page by page."""

    def __init__(self, pg, name, sql, params, page=20_000):
        self.cursor = psycopg.ServerCursor(pg, name)
        for oid in _OIDS.values():
            self.cursor.adapters.register_loader(oid, psycopg.adapters.get_loader(oid, Format.BINARY))
        self.cursor.execute(sql, params, binary=True)
        self.page = page
        self.rows = []
        self.done = False

    def take_below(self, end):
        """The next rows whose customer id is below `end`: whole pages cut with a bisection, no per-row Python."""
        taken = []
        while True:
            if not self.rows:
                if self.done:
                    return taken
                self.rows = self.cursor.fetchmany(self.page)
                if not self.rows:
                    self.done = True
                    return taken
            cut = bisect.bisect_left(self.rows, end, key=_customer)
            if cut == len(self.rows):
                taken += self.rows
                self.rows = []
                continue
            taken += self.rows[:cut]
            self.rows = self.rows[cut:]
            return taken


_customer = operator.itemgetter(1)


def values_list(queryset, *fields):
    """`queryset.values_list(*fields)` as a list of tuples; on PostgreSQL through psycopg's C loaders.

    For plain columns only (no converters): Django's own row loading parses
    every timestamp in Python, which dominates reads of a few hundred thousand rows.
    """
    queryset = queryset.values_list(*fields)
    if not is_postgres():
        return list(queryset)
    sql, params = queryset.query.sql_with_params()
    with _cursor() as cursor:
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()


ROLLUP_FACTS = """
SELECT (answered_at AT TIME ZONE 'UTC')::date AS day, channel, customer_id, kind AS metric,
       (CASE WHEN kind = 'nps' THEN 0 ELSE score END)::float8 AS total, 0::float8 AS total2,
       CASE kind WHEN 'nps' THEN (score >= 9)::int WHEN 'csat' THEN (score >= 4)::int
                 WHEN 'ces' THEN (score >= 5)::int ELSE 0 END AS hits,
       CASE WHEN kind = 'nps' THEN (score <= 6)::int ELSE 0 END AS hits2, NULL::float8 AS value
FROM metrics_surveyresponse WHERE respondent = 'customer' AND kind IN ('nps', 'csat', 'ces', 'tws') AND {answered_at}
UNION ALL
SELECT (c.answered_at AT TIME ZONE 'UTC')::date, c.channel, c.customer_id, 'calibration',
       (a.score - c.score)::float8, abs(a.score - c.score)::float8, 0, 0, NULL
FROM (SELECT DISTINCT ON (conversation_id) conversation_id, score, channel, customer_id, answered_at
      FROM metrics_surveyresponse WHERE kind = 'tws' AND respondent = 'customer' AND conversation_id IS NOT NULL
      ORDER BY conversation_id, answered_at DESC, id DESC) c
JOIN (SELECT DISTINCT ON (conversation_id) conversation_id, score
      FROM metrics_surveyresponse WHERE kind = 'tws' AND respondent = 'agent' AND conversation_id IS NOT NULL
      ORDER BY conversation_id, answered_at DESC, id DESC) a USING (conversation_id)
WHERE {c.answered_at}
UNION ALL
SELECT (closed_at AT TIME ZONE 'UTC')::date, channel, customer_id, 'tth', 0, 0, 0, 0, tth_seconds
FROM metrics_journey WHERE tth_seconds IS NOT NULL AND {closed_at}
UNION ALL
SELECT (first_contact_at AT TIME ZONE 'UTC')::date, channel, customer_id, 'before_contact', 0, 0, 0, 0,
       time_before_contact_seconds
FROM metrics_journey WHERE time_before_contact_seconds IS NOT NULL AND {first_contact_at}
UNION ALL
SELECT (opened_at AT TIME ZONE 'UTC')::date, channel, customer_id, 'bot_only', 0, 0, (handler = 'bot')::int, 0, NULL
FROM metrics_conversationmetrics WHERE handler <> 'none' AND {opened_at}
UNION ALL
SELECT (resolved_at AT TIME ZONE 'UTC')::date, channel, customer_id, 'resolution', 0, 0, 0, 0, resolution_seconds
FROM metrics_conversationmetrics WHERE resolved_at IS NOT NULL AND {resolved_at}
UNION ALL
SELECT (resolved_at AT TIME ZONE 'UTC')::date, channel, customer_id, 'came_back', 0, 0, came_back::int, 0, NULL
FROM metrics_conversationmetrics WHERE resolved_at IS NOT NULL AND came_back IS NOT NULL AND {resolved_at}
UNION ALL
SELECT (first_response_at AT TIME ZONE 'UTC')::date, channel, customer_id, 'first_response', 0, 0, 0, 0,
       first_response_seconds
FROM metrics_conversationmetrics WHERE first_response_seconds IS NOT NULL AND {first_response_at}
"""

ROLLUP_COLUMNS = ("day", "dimension", "key", "metric", "n", "total", "total2", "hits", "hits2", "values")

ROLLUP_SELECT = """
SELECT day, 'all', '', metric, count(*), sum(total), sum(total2), sum(hits), sum(hits2),
       jsonb_agg(value ORDER BY value) FILTER (WHERE value IS NOT NULL)
FROM facts GROUP BY day, metric
UNION ALL
SELECT day, 'channel', COALESCE(channel, ''), metric, count(*), sum(total), sum(total2), sum(hits), sum(hits2),
       jsonb_agg(value ORDER BY value) FILTER (WHERE value IS NOT NULL)
FROM facts GROUP BY day, COALESCE(channel, ''), metric
UNION ALL
SELECT f.day, 'segment', s.slug, f.metric, count(*), sum(f.total), sum(f.total2), sum(f.hits), sum(f.hits2),
       jsonb_agg(f.value ORDER BY f.value) FILTER (WHERE f.value IS NOT NULL)
FROM facts f
JOIN customers_customer_segments cs ON cs.customer_id = f.customer_id
JOIN customers_segment s ON s.id = cs.segment_id
GROUP BY f.day, s.slug, f.metric
"""

ROLLUP_INSERT = """
WITH facts AS MATERIALIZED ({facts})
INSERT INTO metrics_metricrollup (day, dimension, key, metric, n, total, total2, hits, hits2, "values")
""" + ROLLUP_SELECT

# The full rebuild splits the days over this many connections of its own (every group lies within one day).
ROLLUP_CONNECTIONS = 2
# Where those connections put their rows for the caller to take in its own transaction (PostgreSQL only: an
# unlogged table, migration metrics 0004).
ROLLUP_BUILD_TABLE = "metrics_rollup_build"


def rollups_insert(days, *, parallel=False):
    """PostgreSQL: build the roll-up rows of these days (None: all) set-based; returns the count.

    The same parts as `metrics.services._rollup_parts` computes in Python
    (the test suite holds the two to the same rows). One INSERT … SELECT; or,
    with `parallel` (all days, everything they read committed), the days are
    split over ROLLUP_CONNECTIONS connections that aggregate at once into the
    build table, and their rows are moved in here, in the caller's transaction.
    """
    import re
    from datetime import datetime, time, timedelta, timezone

    params = {}
    if days is None:
        def condition(_column):
            return "TRUE"
    else:
        days = sorted(days)
        params = {"days": days, "lo": datetime.combine(days[0], time.min, tzinfo=timezone.utc),
                  "hi": datetime.combine(days[-1] + timedelta(days=1), time.min, tzinfo=timezone.utc)}

        def condition(column):
            return (f"{column} >= %(lo)s AND {column} < %(hi)s "
                    f"AND ({column} AT TIME ZONE 'UTC')::date = ANY(%(days)s::date[])")
    if parallel and days is None:
        return _rollups_insert_parallel()
    facts = re.sub(r"\{([a-z_.]+)\}", lambda match: condition(match.group(1)), ROLLUP_FACTS)
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor
        cursor.execute(ROLLUP_INSERT.replace("{facts}", facts), params)
        return cursor.rowcount


def _rollups_insert_parallel():
    import re

    from django.db import connections

    columns = ", ".join(connection.ops.quote_name(name) for name in ROLLUP_COLUMNS)
    failures = [None] * ROLLUP_CONNECTIONS

    def facts_of(part):
        # Each source row's day comes from the very column its condition names: part k takes the days
        # k, k + n, k + 2n, … (none of those columns is NULL where a fact comes from it).
        return re.sub(r"\{([a-z_.]+)\}", lambda match: (
            f"mod(({match.group(1)} AT TIME ZONE 'UTC')::date - DATE '0001-01-01', {ROLLUP_CONNECTIONS}) = {part}"),
            ROLLUP_FACTS)

    def aggregate(part):
        # Into the build table, committed on this connection: the rows never travel to Python and back,
        # and their jsonb is copied below as it is stored, not printed and parsed again.
        builder = connections.create_connection("default")
        try:
            builder.ensure_connection()
            with builder.connection.transaction(), builder.connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {ROLLUP_BUILD_TABLE} WHERE part = %s", [part])
                cursor.execute(
                    f"WITH facts AS MATERIALIZED ({facts_of(part)})\n"
                    f"INSERT INTO {ROLLUP_BUILD_TABLE} (part, {columns}) SELECT {part}, * FROM ({ROLLUP_SELECT}) parts")
        except BaseException as exc:  # raised below, in the caller's thread
            failures[part] = exc
        finally:
            builder.close()

    threads = [threading.Thread(target=aggregate, args=(part,), name=f"metrics-rollups-{part}")
               for part in range(ROLLUP_CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for failure in failures:
        if failure is not None:
            raise failure
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO metrics_metricrollup ({columns}) "
                       f"SELECT {columns} FROM {ROLLUP_BUILD_TABLE} WHERE part < %s", [ROLLUP_CONNECTIONS])
        count = cursor.rowcount
        # Emptied in the caller's transaction: rebuilds are serialised by their lock, so no other one is
        # writing here now; should this transaction roll back, each part starts by clearing its own rows.
        cursor.execute(f"TRUNCATE {ROLLUP_BUILD_TABLE}")
    return count

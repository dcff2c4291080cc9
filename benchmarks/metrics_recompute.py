"""Full and incremental metrics recompute on PostgreSQL, against one bare SQL pass over the interactions.

    python benchmarks/metrics_recompute.py [--database crm_bench_metrics] [--refill] [--nightly-rounds 3] [--profile]

1. Fills a dedicated database (default `crm_bench_metrics`, created and migrated if
   missing) with set-based SQL (INSERT … SELECT generate_series): 100,000 customers,
   200,000 conversations (80 % resolved), and 1,000,000 interactions over 365 days —
   messages with sentiment (a third inbound misery or magic), complaints, reported
   incident times, calls with durations, bot and agent replies, and 50,000 survey
   answers (with their SurveyResponse rows). Skipped when already filled.
2. Bare pass: one SQL query reading every interaction's metric columns in
   (customer, time) order through a server-side cursor — the least any recompute
   must read. Timed twice; the faster counts (warm cache, like the recompute).
   Also timed, for reference only: the same query streamed without a cursor
   (psycopg's chunked rows; PostgreSQL may plan a parallel scan and sort) —
   a faster single pass, with the ratios against it printed beside.
3. Full recompute: `metrics.services.all_recompute()` — the chunks of customer ids
   shared by METRICS_FULL_PROCESSES forked processes (one per core, here 2), each
   with about the same share of the interactions; each process makes one ordered
   pass over its customers' interactions and conversations through server-side
   cursors (read by a thread of its own, a couple of chunks ahead), chunk by
   chunk: every journey, conversation clock, activity span and snapshot. Then
   every daily roll-up (the days split over two connections). Run twice: the
   first writes everything from empty; then, three times (--nightly-rounds), the
   nightly case, which finds most rows unchanged: VACUUM ANALYZE of the metrics
   tables (untimed: autovacuum's work between two nights, which would otherwise
   still be running during the timed run), a bare pass, the nightly recompute;
   each nightly run is set against the bare pass just before it (the machine's
   speed drifts from minute to minute) and the median ratio counts. Peak memory:
   the PSS of this process and its children is sampled after every chunk; flat
   means the last chunk's figure is about the fifth's.
4. Incremental: 1,000 random customers marked dirty, then
   `dirty_customers_recompute()` (the beat task's work, roll-ups of their days
   included). Five rounds; the median counts.

Targets (issue 4): full (nightly, median) ≤ 2× the bare pass; incremental of 1,000 < 0.5 s. Writes
the figures to benchmarks/results/<database>.json.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import resource
import statistics
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.database import database_migrated  # noqa: E402

CUSTOMERS = 100_000
CONVERSATIONS = 200_000
INTERACTIONS = 1_000_000
SURVEYS = 50_000
DAYS = 365


METRICS_TABLES = ("metrics_journey", "metrics_conversationmetrics", "metrics_activityspan", "metrics_customersnapshot",
                  "metrics_metricrollup", "metrics_dirtycustomer", "metrics_dirtyday", "metrics_textanalysis")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--database", default="crm_bench_metrics")
    parser.add_argument("--refill", action="store_true", help="Drop and refill the database.")
    parser.add_argument("--rounds", type=int, default=5, help="Incremental rounds.")
    parser.add_argument("--nightly-rounds", type=int, default=3,
                        help="Nightly full recomputes, each against a bare pass timed just before it.")
    parser.add_argument("--profile", action="store_true",
                        help="After the timed runs: cProfile one incremental round and one more nightly full recompute.")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


FILL = """
SELECT setseed(0.17);
DELETE FROM metrics_surveyresponse;
DELETE FROM interactions_interaction;
DELETE FROM interactions_conversation;
DELETE FROM customers_identity;
DELETE FROM customers_customer_segments;
DELETE FROM customers_customer;
DELETE FROM customers_segment;

INSERT INTO customers_segment (id, slug, name) VALUES (1, 'vip', 'VIP'), (2, 'b2b', 'B2B'), (3, 'trial', 'Trial');

INSERT INTO customers_customer (id, name, attributes, created_at, updated_at)
SELECT g, 'Bench customer ' || g, '{}'::jsonb, now() - interval '400 days', now()
FROM generate_series(1, %(customers)s) g;

INSERT INTO customers_customer_segments (customer_id, segment_id)
SELECT g, 1 + g %% 3 FROM generate_series(1, %(customers)s) g WHERE g %% 4 <> 0;

INSERT INTO customers_identity (id, kind, value, created_at, customer_id)
SELECT g, 'email', 'customer' || g || '@bench.example.com', now(), g FROM generate_series(1, %(customers)s) g;

-- Two conversations per customer: conversation 2c-1 and 2c of customer c.
INSERT INTO interactions_conversation (id, status, subject, channels, opened_at, last_activity_at, first_inbound_at,
    first_response_at, resolved_at, reopen_count, created_at, updated_at, customer_id)
SELECT g, CASE WHEN g %% 5 = 0 THEN 'open' ELSE 'resolved' END, 'Bench conversation',
    (ARRAY['["chat"]','["email"]','["phone"]','["chat","email"]'])[1 + g %% 4]::jsonb,
    o, o + interval '2 hours', o, o + interval '5 minutes',
    CASE WHEN g %% 5 = 0 THEN NULL ELSE o + (random() * interval '3 days') END, (g %% 7 = 0)::int,
    o, now(), (g + 1) / 2
FROM (SELECT g, now() - (random() * make_interval(days => %(days)s)) AS o FROM generate_series(1, %(conversations)s) g) s;

-- Interactions: customers drawn from a power law (some with hundreds, most with a few).
INSERT INTO interactions_interaction (id, channel, kind, direction, author_type, author_name, occurred_at,
    subject, body, sentiment, intent, incident_at, source, external_id, data, created_at, agent_id,
    conversation_id, customer_id, identity_id)
SELECT g,
    (ARRAY['chat','email','phone','sms','whatsapp','facebook','chat','web','email','chat'])[1 + g %% 10],
    CASE WHEN g %% 20 = 0 THEN 'survey' WHEN g %% 10 = 2 THEN 'call' WHEN g %% 10 = 7 THEN 'visit'
         WHEN g %% 10 = 5 THEN 'reaction' ELSE 'message' END,
    CASE WHEN g %% 20 = 0 THEN 'inbound' WHEN g %% 3 = 0 THEN 'outbound' WHEN g %% 31 = 1 THEN 'internal'
         ELSE 'inbound' END,
    CASE WHEN g %% 20 = 0 THEN 'customer' WHEN g %% 3 = 0 THEN (CASE WHEN g %% 2 = 0 THEN 'bot' ELSE 'agent' END)
         WHEN g %% 31 = 1 THEN 'agent' ELSE 'customer' END,
    '', at, '',
    'Bench message ' || g,
    CASE WHEN g %% 20 <> 0 AND g %% 3 <> 0 THEN round((random() * 2 - 1)::numeric, 2)::float END,
    CASE WHEN g %% 47 = 0 THEN 'complaint' ELSE '' END,
    CASE WHEN g %% 23 = 0 THEN at - (random() * interval '5 days') END,
    'bench', 'bench-' || g,
    CASE WHEN g %% 20 = 0 THEN jsonb_build_object('survey', jsonb_build_object(
            'kind', (ARRAY['nps','csat','ces','tws'])[1 + (g / 20) %% 4],
            'score', CASE (g / 20) %% 4 WHEN 0 THEN floor(random() * 11) WHEN 2 THEN 1 + floor(random() * 7)
                     ELSE 1 + floor(random() * 5) END,
            'respondent', 'customer'))
         WHEN g %% 10 = 2 THEN jsonb_build_object('duration_seconds', floor(random() * 900))
         ELSE '{}'::jsonb END,
    now(), NULL,
    CASE WHEN g %% 20 <> 0 AND g %% 10 NOT IN (5, 7) THEN 2 * c - (g %% 2) END,
    c, NULL
FROM (
    SELECT g, 1 + floor(%(customers)s * power(random(), 2))::bigint AS c,
           now() - (random() * make_interval(days => %(days)s)) AS at
    FROM generate_series(1, %(interactions)s) g
) s;

INSERT INTO metrics_surveyresponse (kind, score, question, question_version, comment, channel, customer_id,
    conversation_id, interaction_id, respondent, agent_id, answered_at, source, external_id, created_at)
SELECT data->'survey'->>'kind', (data->'survey'->>'score')::int, 'Bench question', 'v1', '', channel, customer_id,
    NULL, id, 'customer', NULL, occurred_at, 'bench', 'bench-' || id, now()
FROM interactions_interaction WHERE kind = 'survey';

SELECT setval(pg_get_serial_sequence('customers_customer', 'id'), %(customers)s);
SELECT setval(pg_get_serial_sequence('customers_identity', 'id'), %(customers)s);
SELECT setval(pg_get_serial_sequence('customers_segment', 'id'), 3);
SELECT setval(pg_get_serial_sequence('interactions_conversation', 'id'), %(conversations)s);
SELECT setval(pg_get_serial_sequence('interactions_interaction', 'id'), %(interactions)s);
"""


def database_prepare(args):
    url = database_migrated(server=args.server, name=args.database, refill=args.refill)
    with psycopg.connect(url, autocommit=True) as conn:
        filled = conn.execute("SELECT count(*) FROM interactions_interaction WHERE source = 'bench'").fetchone()[0]
        if filled >= INTERACTIONS:
            print(f"{args.database}: already filled ({filled:,} interactions)")
            return url
        started = time.perf_counter()
        params = {"customers": CUSTOMERS, "conversations": CONVERSATIONS, "interactions": INTERACTIONS,
                  "days": DAYS}
        with conn.transaction():
            for statement in FILL.split(";\n"):
                if statement.strip():
                    conn.execute(statement, params)
        conn.execute("VACUUM ANALYZE")
        print(f"{args.database}: filled in {time.perf_counter() - started:.0f}s")
    return url


BARE_PASS = """
SELECT id, customer_id, conversation_id, channel, kind, direction, author_type, occurred_at, sentiment, intent,
       incident_at
FROM interactions_interaction
ORDER BY customer_id, occurred_at, id
"""


def bare_pass(url):
    """Seconds to read every interaction's metric columns, in (customer, time) order, streamed."""
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        rows = 0
        with conn.cursor(name="bare_pass") as cursor:
            cursor.itersize = 10_000
            cursor.execute(BARE_PASS)
            for _row in cursor:
                rows += 1
        return time.perf_counter() - started, rows


def bare_pass_streamed(url):
    """The same query without a server-side cursor: streamed in chunks of rows, PostgreSQL free to plan a whole
    read (parallel scan and sort) and to send while the client reads. Reported beside the bare pass, not instead:
    the recompute reads through server-side cursors."""
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        rows = 0
        with conn.cursor() as cursor:
            for _row in cursor.stream(BARE_PASS, size=10_000):
                rows += 1
        return time.perf_counter() - started, rows


def django_setup(url):
    os.environ.update({
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "testserver",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "crm.settings",
    })
    os.environ.pop("REDIS_URL", None)  # tasks stay out of it: the services are timed directly
    import django

    django.setup()


def rss_mb(pid="self"):
    """Resident set size in MB of a process (Linux /proc), falling back to this process's peak."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if pid == "self" else 0.0


def pss_mb(pid):
    """Proportional set size in MB (Linux /proc): pages shared after a fork count once across the processes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss_mb(pid)


def tree_memory_mb():
    """Memory of this process plus its children (the processes the full recompute forks), in MB (PSS)."""
    me = str(os.getpid())
    total = pss_mb("self")
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = stat.read().rsplit(")", 1)[1].split()[1]
            except OSError:
                continue
            if parent == me:
                total += pss_mb(entry)
    return total


def full_recompute():
    from metrics import services

    samples = []

    def progress(_count):
        samples.append(tree_memory_mb())

    started = time.perf_counter()
    done = services.all_recompute(progress=progress, rollups=False)
    middle = time.perf_counter()
    services.rollups_rebuild(days=None)
    ended = time.perf_counter()
    print(f"  (customers pass {middle - started:.2f} s, roll-ups rebuilt {ended - middle:.2f} s)")
    return ended - started, done, samples


def incremental(rng, rounds):
    from customers.models import Customer
    from metrics import services
    from metrics.models import DirtyCustomer

    ids = list(Customer.objects.values_list("pk", flat=True))
    timings = []
    for _ in range(rounds):
        chosen = rng.sample(ids, 1000)
        # The marks ingestion leaves (customers_mark_dirty would also run them at once in embedded mode).
        DirtyCustomer.objects.bulk_create([DirtyCustomer(customer_id=pk) for pk in chosen])
        started = time.perf_counter()
        done = services.dirty_customers_recompute()
        timings.append(time.perf_counter() - started)
        assert done == 1000, done
    return timings


def main():
    args = parse_args()
    rng = random.Random(args.seed)
    url = database_prepare(args)
    django_setup(url)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(METRICS_TABLES))
        cursor.execute("SELECT count(*), count(DISTINCT customer_id) FROM interactions_interaction")
        interactions, customers = cursor.fetchone()
    print(f"{interactions:,} interactions over {customers:,} customers with any")

    bare = [bare_pass(url) for _ in range(2)]
    bare_seconds = min(seconds for seconds, _ in bare)
    print(f"bare SQL pass: {bare_seconds:.2f} s ({bare[0][1]:,} rows)  [runs: {', '.join(f'{s:.2f}' for s, _ in bare)}]")
    streamed = [bare_pass_streamed(url) for _ in range(2)]
    streamed_seconds = min(seconds for seconds, _ in streamed)
    print(f"bare SQL pass, streamed instead of a server-side cursor: {streamed_seconds:.2f} s "
          f"[runs: {', '.join(f'{s:.2f}' for s, _ in streamed)}]")

    first_seconds, done, samples_first = full_recompute()
    print(f"full recompute (from empty): {first_seconds:.2f} s for {done:,} customers "
          f"= {first_seconds / bare_seconds:.2f}x bare")
    nightly = []
    for _ in range(args.nightly_rounds):
        # A night later autovacuum has been through the rows the last run wrote; here it would still be
        # at work on them during the timed nightly run, taking one of the machine's two cores.
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE " + ", ".join(METRICS_TABLES))
        vacuum_seconds = time.perf_counter() - started
        # The machine's speed drifts from minute to minute: each nightly run is set against a bare pass
        # timed just before it.
        bare_before, _ = bare_pass(url)
        seconds, _, samples = full_recompute()
        nightly.append({"bare_pass_seconds": bare_before, "seconds": seconds, "ratio": seconds / bare_before})
        print(f"full recompute (nightly, rows exist): {seconds:.2f} s = {seconds / bare_before:.2f}x the bare pass "
              f"timed just before it ({bare_before:.2f} s; VACUUM ANALYZE before both, untimed: "
              f"{vacuum_seconds:.2f} s)")
    ratios = [run["ratio"] for run in nightly]
    second_seconds = statistics.median(run["seconds"] for run in nightly)
    print(f"nightly: median {statistics.median(ratios):.2f}x bare over {len(ratios)} rounds "
          f"[{', '.join(f'{r:.2f}' for r in ratios)}]")
    print(f"  against the streamed bare pass: from empty {first_seconds / streamed_seconds:.2f}x, "
          f"nightly (median time) {second_seconds / streamed_seconds:.2f}x")
    tenth = samples[min(4, len(samples) - 1)]
    print(f"memory (PSS, all processes) after chunk 5: {tenth:.0f} MB, after the last ({len(samples)}): "
          f"{samples[-1]:.0f} MB, "
          f"max {max(samples):.0f} MB")

    with connection.cursor() as cursor:
        counts = {}
        for table in ("metrics_journey", "metrics_conversationmetrics", "metrics_activityspan",
                      "metrics_customersnapshot", "metrics_metricrollup"):
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    print("rows: " + ", ".join(f"{name.split('_', 1)[1]} {n:,}" for name, n in counts.items()))

    timings = incremental(rng, args.rounds)
    median = statistics.median(timings)
    print(f"incremental, 1,000 dirty customers: median {median * 1000:.0f} ms "
          f"[{', '.join(f'{t * 1000:.0f}' for t in timings)} ms]")

    if args.profile:
        from customers.models import Customer
        from metrics import services

        from metrics.models import DirtyCustomer

        ids = rng.sample(list(Customer.objects.values_list("pk", flat=True)), 1000)
        DirtyCustomer.objects.bulk_create([DirtyCustomer(customer_id=pk) for pk in ids])
        profiler = cProfile.Profile()
        profiler.enable()
        services.dirty_customers_recompute()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())

        # The nightly pass (its reader thread is not profiled: its time shows as waits on the queue).
        profiler = cProfile.Profile()
        profiler.enable()
        full_recompute()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue())

    results = {
        "interactions": interactions, "customers": customers, "bare_pass_seconds": bare_seconds,
        "bare_pass_streamed_seconds": streamed_seconds,
        "full_first_seconds": first_seconds, "full_first_ratio": first_seconds / bare_seconds,
        "full_nightly_rounds": nightly, "full_nightly_ratio_median": statistics.median(ratios),
        "memory_mb_chunk5": tenth, "memory_mb_last": samples[-1], "memory_mb_max": max(samples + samples_first),
        "incremental_1000_seconds": timings, "incremental_1000_median": median, "rows": counts,
    }
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{args.database}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

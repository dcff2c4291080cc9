"""Timeline reads and bulk ingestion through the API, against bare psycopg on the same tables, in one run.

    python benchmarks/timeline_and_ingest.py [--database crm_bench] [--refill] [--profile]

1. Fills a dedicated PostgreSQL database (default `crm_bench`, created and
   migrated if missing) with 100,000 customers, 200,000 identities, 100,000
   conversations and 1,000,000 interactions over 200 days, with set-based SQL
   (INSERT … SELECT generate_series); skipped when already filled.
2. Timeline: the first page (50) of `GET /api/v1/customers/{id}/timeline/`
   through Django's full request stack (test client, token auth, middleware,
   serialisation) against the bare indexed query through psycopg, interleaved,
   for the same customers (random ones among those with ≥ 50 interactions). Target: API p50 within 10× the bare p50.
3. Bulk ingest: `POST /api/v1/interactions/bulk/` with 1,000-item batches
   (identity resolution: half known customers, a third new, the rest a known
   visitor with a new phone number), against bare pipelined INSERTs of as many
   rows into the same table, API and bare batches alternating. Targets: ≥ 10,000 interactions/s and ≥ 1/6 of bare.
4. Concurrent ingest over HTTP (`--clients`, default 2; 0 skips it): gunicorn
   serving `crm.wsgi` with as many workers as clients, the way docker-compose
   runs the web service, and that many clients posting batches at once, against
   as many psycopg connections running the bare INSERTs at once. Throughput is
   all items over the wall time of the whole round.
5. `--profile` runs one more ingest batch under cProfile and prints where the
   time goes.

Runs with DEBUG off and Redis as the broker (tasks queued, as in production;
the Redis db is flushed at the end). Prints the figures and writes them to
benchmarks/results/<database>.json.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.database import database_migrated  # noqa: E402

CUSTOMERS = 100_000
INTERACTIONS = 1_000_000
BATCH = 1000
DAYS = 200


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--database", default="crm_bench")
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/5"))
    parser.add_argument("--refill", action="store_true", help="Drop and refill the database.")
    parser.add_argument("--timeline-samples", type=int, default=500)
    parser.add_argument("--ingest-batches", type=int, default=20)
    parser.add_argument("--clients", type=int, default=2, help="Concurrent HTTP clients (and gunicorn workers).")
    parser.add_argument("--concurrent-batches", type=int, default=10, help="Batches per client.")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--seed", type=int, default=11)
    return parser.parse_args()


# --- 1. fill ---------------------------------------------------------------------------


def database_prepare(args):
    url = database_migrated(server=args.server, name=args.database, refill=args.refill)
    with psycopg.connect(url, autocommit=True) as conn:
        filled = conn.execute("SELECT count(*) FROM interactions_interaction WHERE source = 'bench'").fetchone()[0]
        if filled >= INTERACTIONS:
            print(f"{args.database}: already filled ({filled:,} bench interactions)")
            return url
        started = time.perf_counter()
        fill(conn)
        print(f"{args.database}: filled in {time.perf_counter() - started:.0f}s")
    return url


FILL = """
SELECT setseed(0.42);
DELETE FROM interactions_interaction;
DELETE FROM interactions_conversation;
DELETE FROM customers_identity;
DELETE FROM customers_customer_segments;
DELETE FROM customers_customer;

INSERT INTO customers_customer (id, name, attributes, created_at, updated_at)
SELECT g, 'Bench customer ' || g, '{}'::jsonb, now() - interval '210 days', now()
FROM generate_series(1, %(customers)s) g;

INSERT INTO customers_identity (id, kind, value, created_at, customer_id)
SELECT g, 'email', 'customer' || g || '@bench.example.com', now(), g FROM generate_series(1, %(customers)s) g
UNION ALL
SELECT %(customers)s + g, 'chat', 'bench-visitor-' || g, now(), g FROM generate_series(1, %(customers)s) g;

INSERT INTO interactions_conversation (id, status, subject, channels, opened_at, last_activity_at, first_inbound_at,
    first_response_at, resolved_at, reopen_count, created_at, updated_at, customer_id)
SELECT g, 'resolved', 'Bench conversation', '["chat"]'::jsonb, now() - interval '30 days', now() - interval '29 days',
    now() - interval '30 days', now() - interval '30 days' + interval '5 minutes', now() - interval '29 days', 0,
    now() - interval '30 days', now(), g
FROM generate_series(1, %(customers)s) g;

-- Activity is skewed: customer ids drawn from a power law, so some customers have
-- hundreds of interactions and many only a few (as in a real CRM).
INSERT INTO interactions_interaction (id, channel, kind, direction, author_type, author_name, occurred_at,
    subject, body, sentiment, intent, incident_at, source, external_id, data, created_at, agent_id,
    conversation_id, customer_id, identity_id)
SELECT g,
    (ARRAY['chat','email','phone','sms','whatsapp','facebook','instagram','web'])[1 + g %% 8],
    (ARRAY['message','message','call','message','message','reaction','message','visit'])[1 + g %% 8],
    CASE WHEN g %% 3 = 0 THEN 'outbound' ELSE 'inbound' END,
    CASE WHEN g %% 3 = 0 THEN 'agent' ELSE 'customer' END,
    '',
    now() - (random() * interval '%(days)s days'),
    '',
    'Bench message ' || g || ': my order has not arrived yet, can you check the delivery status please?',
    CASE WHEN g %% 5 = 0 THEN round((random() * 2 - 1)::numeric, 2)::float END,
    '', NULL, 'bench', 'bench-' || g, '{}'::jsonb, now(), NULL,
    CASE WHEN g %% 8 IN (0, 1, 3, 4) THEN c END,
    c, c
FROM (
    SELECT g, 1 + floor(%(customers)s * power(random(), 2.5))::bigint AS c
    FROM generate_series(1, %(interactions)s) g
) s;

SELECT setval(pg_get_serial_sequence('customers_customer', 'id'), %(customers)s);
SELECT setval(pg_get_serial_sequence('customers_identity', 'id'), 2 * %(customers)s);
SELECT setval(pg_get_serial_sequence('interactions_conversation', 'id'), %(customers)s);
SELECT setval(pg_get_serial_sequence('interactions_interaction', 'id'), %(interactions)s);
"""


def fill(conn):
    params = {"customers": CUSTOMERS, "interactions": INTERACTIONS, "days": DAYS}
    with conn.transaction():
        for statement in FILL.split(";\n"):
            if statement.strip():
                conn.execute(statement, params)
    conn.execute("VACUUM ANALYZE")


# --- Django in this process ------------------------------------------------------------------


def django_setup(url, redis_url):
    os.environ.update({
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "DEBUG": "false",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "testserver",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "crm.settings",
    })
    import crm.wsgi  # noqa: F401  set up as a gunicorn worker is, garbage collector tuning included
    from django.test import Client

    from crm.api import SCOPES
    from integrations.services import api_token_create

    _token, raw = api_token_create(name="benchmark", scopes=list(SCOPES))
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}"), raw


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


# --- 2. timeline -------------------------------------------------------------------------------

BARE_TIMELINE = """
SELECT id, customer_id, conversation_id, channel, kind, direction, author_type, author_name, agent_id,
       occurred_at, subject, body, sentiment, intent, incident_at, source, external_id, data, created_at
FROM interactions_interaction
WHERE customer_id = %s
ORDER BY occurred_at DESC, id DESC
LIMIT 51
"""


BARE_TIMELINE_AFTER = BARE_TIMELINE.replace(
    "WHERE customer_id = %s", "WHERE customer_id = %s AND occurred_at <= %s AND (occurred_at, id) < (%s, %s)"
)


def timeline_bench(client, url, samples, rng):
    with psycopg.connect(url, autocommit=True) as conn:
        # Customers with at least a full page of history (a page of 50 is what is measured).
        busy = [row[0] for row in conn.execute(
            "SELECT customer_id FROM interactions_interaction GROUP BY customer_id HAVING count(*) >= 50 ORDER BY 1"
        )]
        ids = [rng.choice(busy) for _ in range(samples + 50)]
        plan = conn.execute("EXPLAIN " + BARE_TIMELINE, [ids[0]]).fetchall()
        api, bare, rows, api2, bare2 = [], [], [], [], []
        for index, customer_id in enumerate(ids):
            started = time.perf_counter()
            response = client.get(f"/api/v1/customers/{customer_id}/timeline/")
            api_seconds = time.perf_counter() - started
            assert response.status_code == 200, response.content[:500]
            started = time.perf_counter()
            fetched = conn.execute(BARE_TIMELINE, [customer_id], prepare=True).fetchall()
            bare_seconds = time.perf_counter() - started
            if index < 50:  # the first 50 warm caches and connections
                continue
            api.append(api_seconds)
            bare.append(bare_seconds)
            page = response.json()
            rows.append(len(page["results"]))
            assert len(fetched) >= min(50, rows[-1])
            if page["next"] and len(fetched) > 50:
                # The next page, resumed from the cursor: still one index range scan.
                started = time.perf_counter()
                second = client.get(page["next"].removeprefix("http://testserver"))
                api2.append(time.perf_counter() - started)
                assert second.status_code == 200 and second.json()["results"]
                last = fetched[49]
                started = time.perf_counter()
                conn.execute(BARE_TIMELINE_AFTER, [customer_id, last[9], last[9], last[0]], prepare=True).fetchall()
                bare2.append(time.perf_counter() - started)
    result = {
        "samples": len(api),
        "customers_with_a_full_page": len(busy),
        "page_rows": sorted(set(rows)),
        "api_p50_ms": round(percentile(api, 0.5) * 1000, 3),
        "api_p99_ms": round(percentile(api, 0.99) * 1000, 3),
        "bare_p50_ms": round(percentile(bare, 0.5) * 1000, 3),
        "bare_p99_ms": round(percentile(bare, 0.99) * 1000, 3),
        "bare_plan": " / ".join(line[0].strip() for line in plan[:3]),
    }
    result["p50_ratio"] = round(result["api_p50_ms"] / result["bare_p50_ms"], 2)
    result["p99_ratio"] = round(result["api_p99_ms"] / result["bare_p99_ms"], 2)
    if api2:
        result["page2_samples"] = len(api2)
        result["page2_api_p50_ms"] = round(percentile(api2, 0.5) * 1000, 3)
        result["page2_bare_p50_ms"] = round(percentile(bare2, 0.5) * 1000, 3)
        result["page2_p50_ratio"] = round(result["page2_api_p50_ms"] / result["page2_bare_p50_ms"], 2)
    return result


# --- 3. bulk ingest ------------------------------------------------------------------------------

CHANNELS = ["chat", "email", "sms", "whatsapp", "facebook"]


def ingest_items(run, batch_number, rng):
    now = datetime.now(timezone.utc)
    items = []
    for n in range(BATCH):
        serial = f"{run}-{batch_number}-{n}"
        roll = rng.random()
        customer = rng.randint(1, CUSTOMERS)
        if roll < 0.5:
            identities = [{"kind": "email", "value": f"Customer{customer}@bench.example.com"}]
        elif roll < 0.83:
            identities = [{"kind": "email", "value": f"new-{serial}@bench.example.com"}]
        else:
            identities = [{"kind": "chat", "value": f"bench-visitor-{customer}"},
                          {"kind": "phone", "value": f"+1 415 {rng.randint(200, 999)} {rng.randint(1000, 9999)}"}]
        items.append({
            "source": "bench-ingest",
            "external_id": serial,
            "channel": rng.choice(CHANNELS),
            "kind": "message",
            "direction": "inbound",
            "author_type": "customer",
            "occurred_at": (now - timedelta(seconds=rng.randint(0, 3600))).isoformat(),
            "identities": identities,
            "body": f"Bench ingest {serial}: where is my parcel? It was due yesterday.",
            "sentiment": round(rng.uniform(-1, 1), 2),
        })
    return items


BARE_INSERT = """
INSERT INTO interactions_interaction (channel, kind, direction, author_type, author_name, occurred_at, subject, body,
    sentiment, intent, incident_at, source, external_id, data, created_at, agent_id, conversation_id, customer_id,
    identity_id)
VALUES (%s, %s, %s, %s, '', %s, '', %s, %s, '', NULL, %s, %s, '{}'::jsonb, now(), NULL, NULL, %s, NULL)
"""


def bare_rows(body, run, rng):
    """BARE_INSERT's parameters for a batch's items: the same interactions, on existing customers, unresolved."""
    return [(item["channel"], item["kind"], item["direction"], item["author_type"],
             datetime.fromisoformat(item["occurred_at"]), item["body"], item["sentiment"],
             "bench-bare", f"{run}-{item['external_id']}", rng.randint(1, CUSTOMERS))
            for item in json.loads(body)["items"]]


def ingest_bench(client, url, batches, rng):
    run = f"r{int(time.time())}"
    bodies = [json.dumps({"items": ingest_items(run, number, rng)}) for number in range(batches + 1)]
    bare_batches = [bare_rows(body, run, rng) for body in bodies]
    from django.db import connection

    api_times, bare_times, created = [], [], 0
    # CPU seconds: of this process (Django), and of each side's PostgreSQL backend.
    cpu = {"django": 0.0, "api_postgres": 0.0, "bare_postgres": 0.0}
    with psycopg.connect(url) as conn:
        connection.ensure_connection()
        api_backend = connection.connection.info.backend_pid
        bare_backend = conn.info.backend_pid
        # API and bare batches alternate, so both meet the same load on a shared machine;
        # the first of each is a warm-up and not counted.
        for number, (body, rows) in enumerate(zip(bodies, bare_batches)):
            started, django_cpu, api_pg_cpu = time.perf_counter(), time.process_time(), _backend_cpu(api_backend)
            response = client.post("/api/v1/interactions/bulk/", body, content_type="application/json")
            api_seconds = time.perf_counter() - started
            if number:
                cpu["django"] += time.process_time() - django_cpu
                cpu["api_postgres"] += _backend_cpu(api_backend) - api_pg_cpu
            assert response.status_code in (200, 201, 207), response.content[:500]
            payload = response.json()
            results = payload["results"] if isinstance(payload, dict) else payload
            started, bare_pg_cpu = time.perf_counter(), _backend_cpu(bare_backend)
            with conn.transaction(), conn.cursor() as cursor:
                # executemany runs in pipeline mode: one round trip per batch, not per row.
                cursor.executemany(BARE_INSERT, rows)
            bare_seconds = time.perf_counter() - started
            if number:
                cpu["bare_postgres"] += _backend_cpu(bare_backend) - bare_pg_cpu
                api_times.append(api_seconds)
                bare_times.append(bare_seconds)
                created += sum(1 for r in results if r.get("status") == "created")
    count = batches * BATCH
    assert created == count, f"{created} of {count} created"
    result = {
        "items": count,
        "batch": BATCH,
        "api_items_per_s": round(count / sum(api_times)),
        "bare_items_per_s": round(count / sum(bare_times)),
        "api_seconds_per_batch_p50": round(statistics.median(api_times), 3),
        "bare_seconds_per_batch_p50": round(statistics.median(bare_times), 3),
    }
    result["api_fraction_of_bare"] = round(result["api_items_per_s"] / result["bare_items_per_s"], 3)
    if cpu["api_postgres"] or cpu["bare_postgres"]:
        # What one item costs in CPU, wherever it is spent: with N cores no scheduling beats N / this.
        result["cpu_us_per_item"] = {name: round(seconds / count * 1e6) for name, seconds in cpu.items()}
    return result, run


def _backend_cpu(pid):
    """CPU seconds a PostgreSQL backend has used, when the server runs on this machine (else 0)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _in_parallel(jobs):
    """Run the callables at once, one thread each; the wall time of the slowest."""
    threads = [threading.Thread(target=job) for job in jobs]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def ingest_concurrent(url, redis_url, token, clients, batches, rng):
    """Clients posting at once to gunicorn over HTTP, against as many bare connections inserting at once."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "DEBUG": "false",
           "ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "crm.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(clients), "--timeout", "120", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/health/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("gunicorn did not answer")
        run = f"c{int(time.time())}"
        # One warm-up batch per worker (and more, since gunicorn may hand them to one worker), not counted.
        bodies = {client: [json.dumps({"items": ingest_items(f"{run}-{client}", n, rng)}).encode()
                           for n in range(batches + 2)] for client in range(clients)}
        bare = {client: [bare_rows(body, run, rng) for body in client_bodies]
                for client, client_bodies in bodies.items()}
        created = [0] * clients

        def poster(client, numbers, count):
            def post():
                for number in numbers:
                    request = urllib.request.Request(
                        f"{base}/api/v1/interactions/bulk/", data=bodies[client][number], method="POST",
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                    )
                    with urllib.request.urlopen(request, timeout=120) as response:
                        results = json.loads(response.read())["results"]
                    if count:
                        created[client] += sum(1 for r in results if r.get("status") == "created")
            return post

        def inserter(client, numbers):
            def insert():
                with psycopg.connect(url) as conn:
                    for number in numbers:
                        with conn.transaction(), conn.cursor() as cursor:
                            cursor.executemany(BARE_INSERT, bare[client][number])
            return insert

        _in_parallel([poster(c, [0, 1], False) for c in range(clients)])
        _in_parallel([inserter(c, [0, 1]) for c in range(clients)])
        measured = list(range(2, batches + 2))
        api_seconds = _in_parallel([poster(c, measured, True) for c in range(clients)])
        bare_seconds = _in_parallel([inserter(c, measured) for c in range(clients)])
    finally:
        server.terminate()
        server.wait(timeout=30)
    count = clients * batches * BATCH
    assert sum(created) == count, f"{sum(created)} of {count} created"
    result = {
        "clients": clients,
        "items": count,
        "api_items_per_s": round(count / api_seconds),
        "bare_items_per_s": round(count / bare_seconds),
    }
    result["api_fraction_of_bare"] = round(result["api_items_per_s"] / result["bare_items_per_s"], 3)
    return result


def ingest_profile(client, run, rng):
    body = json.dumps({"items": ingest_items(f"{run}-profile", 0, rng)})
    profiler = cProfile.Profile()
    profiler.enable()
    response = client.post("/api/v1/interactions/bulk/", body, content_type="application/json")
    profiler.disable()
    assert response.status_code in (200, 201, 207)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    out.write("--- project functions, by cumulative time ---\n")
    stats.print_stats(r"(interactions|customers|crm|integrations|metrics|standards)/.*\.py", 30)
    out.write("--- everything, by own time (database waits show as psycopg's execute/wait) ---\n")
    stats.sort_stats("tottime").print_stats(15)
    return out.getvalue()


def main():
    args = parse_args()
    rng = random.Random(args.seed)
    url = database_prepare(args)
    client, token = django_setup(url, args.redis)
    from django.db import connection

    print(f"PostgreSQL {connection.cursor().connection.info.server_version}, {os.cpu_count()} CPUs")
    timeline = timeline_bench(client, url, args.timeline_samples, rng)
    print("timeline:", json.dumps(timeline, indent=2))
    ingest, run = ingest_bench(client, url, args.ingest_batches, rng)
    print("ingest:", json.dumps(ingest, indent=2))
    concurrent = None
    if args.clients:
        concurrent = ingest_concurrent(url, args.redis, token, args.clients, args.concurrent_batches, rng)
        print("ingest, concurrent over HTTP:", json.dumps(concurrent, indent=2))
    verdict = {
        "timeline_p50_within_10x": timeline["p50_ratio"] <= 10,
        "ingest_at_least_10000_per_s": max(ingest["api_items_per_s"],
                                           concurrent["api_items_per_s"] if concurrent else 0) >= 10_000,
        "ingest_at_least_a_sixth_of_bare": ingest["api_fraction_of_bare"] >= 1 / 6,
    }
    print("targets:", json.dumps(verdict, indent=2))
    results_dir = ROOT / "benchmarks" / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / f"{args.database}.json").write_text(json.dumps(
        {"at": datetime.now(timezone.utc).isoformat(), "timeline": timeline, "ingest": ingest,
         "ingest_concurrent": concurrent, "targets": verdict},
        indent=2) + "\n")
    if args.profile:
        print(ingest_profile(client, run, rng))
    import redis

    redis.Redis.from_url(args.redis).flushdb()
    return 0


if __name__ == "__main__":
    sys.exit(main())

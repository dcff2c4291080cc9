"""manage.py recompute_metrics [--all | --customer ID ...] — with a progress bar."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from customers.models import Customer
from metrics import services


class Command(BaseCommand):
    help = "Recompute metrics: the dirty customers (default), every customer (--all) or given ones (--customer)."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--all", action="store_true", help="Every customer, then every daily roll-up.")
        group.add_argument("--customer", type=int, action="append", metavar="ID",
                           help="This customer (repeatable); a merged id recomputes its survivor too.")
        parser.add_argument("--batch-size", type=int, default=None, help="Dirty customers per transaction.")

    def handle(self, *args, **options):
        quiet = options["verbosity"] == 0
        if options["customer"]:
            from customers.services import customer_ids_resolve

            asked = options["customer"]
            live = customer_ids_resolve(asked)
            missing = [pk for pk in asked if pk not in live]
            if missing:
                raise CommandError(f"No customer {', '.join(f'#{pk}' for pk in missing)}.")
            ids = sorted(set(asked) | set(live.values()))
            done = services.customers_recompute(customer_ids=ids)
            services.rollups_rebuild_dirty()
            self.stdout.write(f"Recomputed {done} customer(s).")
            return
        if options["all"]:
            total = Customer.objects.filter(merged_into__isnull=True).count()
            with tqdm(total=total, unit="customer", disable=quiet, file=self.stderr._out) as bar:
                done = services.all_recompute(progress=bar.update)
            self.stdout.write(f"Recomputed {done} customer(s) and rebuilt the roll-ups.")
            return
        from metrics.models import DirtyCustomer

        total = DirtyCustomer.objects.count()
        with tqdm(total=total, unit="customer", disable=quiet, file=self.stderr._out) as bar:
            done = services.dirty_customers_recompute(batch_size=options["batch_size"], progress=bar.update)
        self.stdout.write(f"Recomputed {done} dirty customer(s).")

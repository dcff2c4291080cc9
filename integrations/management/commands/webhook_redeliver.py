from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from integrations import selectors, services
from integrations.models import WebhookDelivery


class Command(BaseCommand):
    help = "Send outbound webhook deliveries again (same webhook-id and body, a fresh attempt budget)."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="Delivery ids.")
        parser.add_argument("--dead", action="store_true", help="Every dead delivery (narrow with the options below).")
        parser.add_argument("--subscription", type=int, help="Only deliveries of this subscription.")
        parser.add_argument("--event-type", help="Only deliveries of this event type.")
        parser.add_argument("--since", help="Only deliveries created at or after this ISO 8601 time (with zone).")

    def handle(self, *args, ids, dead, subscription, event_type, since, **options):
        if bool(ids) == bool(dead):
            raise CommandError("Give delivery ids, or --dead (optionally with --subscription/--event-type/--since).")
        if ids:
            deliveries = WebhookDelivery.objects.filter(pk__in=ids)
            missing = sorted(set(ids) - set(deliveries.values_list("pk", flat=True)))
            if missing:
                raise CommandError(f"No deliveries with ids {', '.join(map(str, missing))}.")
        else:
            deliveries = selectors.webhook_delivery_list(
                subscription_id=subscription, status=WebhookDelivery.Status.DEAD, event_type=event_type
            )
            if since:
                when = parse_datetime(since)
                if when is None or when.tzinfo is None:
                    raise CommandError("--since takes an ISO 8601 time with its zone, e.g. 2026-11-23T09:00:00Z.")
                deliveries = deliveries.filter(created_at__gte=when)
        count = 0
        for delivery in deliveries.order_by("id").iterator():
            services.webhook_delivery_redeliver(delivery=delivery)
            count += 1
        self.stdout.write(f"Queued {count} deliveries again.")

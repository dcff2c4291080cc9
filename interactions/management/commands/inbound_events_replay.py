from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from interactions.inbound import inbound_events_replay
from interactions.models import InboundEvent


class Command(BaseCommand):
    help = "Process stored inbound provider events again (after a fix); interactions already stored are not doubled."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="Inbound event ids.")
        parser.add_argument("--failed", action="store_true", help="Every failed event (narrow with the options below).")
        parser.add_argument("--provider", choices=InboundEvent.Provider.values, help="Only events of this provider.")
        parser.add_argument("--since", help="Only events received at or after this ISO 8601 time (with zone).")

    def handle(self, *args, ids, failed, provider, since, **options):
        if bool(ids) == bool(failed):
            raise CommandError("Give event ids, or --failed (optionally with --provider/--since).")
        events = InboundEvent.objects.all()
        if ids:
            events = events.filter(pk__in=ids)
            missing = sorted(set(ids) - set(events.values_list("pk", flat=True)))
            if missing:
                raise CommandError(f"No inbound events with ids {', '.join(map(str, missing))}.")
        else:
            events = events.filter(status=InboundEvent.Status.FAILED)
        if provider:
            events = events.filter(provider=provider)
        if since:
            when = parse_datetime(since)
            if when is None or when.tzinfo is None:
                raise CommandError("--since must be an ISO 8601 time with a zone, e.g. 2025-03-01T00:00:00Z.")
            events = events.filter(received_at__gte=when)
        queued, purged = inbound_events_replay(event_ids=list(events.order_by("received_at", "pk").values_list("pk", flat=True)))
        for event_id in purged:
            self.stderr.write(f"Event {event_id} cannot be replayed: its body was purged after the retention period.")
        self.stdout.write(f"{len(queued)} event(s) queued for replay.")

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from crm.api import SCOPES
from integrations.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for an integration and print it once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who the token is for, e.g. 'shop' or 'twilio-bridge'.")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            default=[],
            help=f"A scope to grant; repeat for more. Known: {', '.join(SCOPES)}.",
        )
        parser.add_argument("--all-scopes", action="store_true", help="Grant every scope.")

    def handle(self, *args, name, scopes, all_scopes, **options):
        if all_scopes:
            scopes = list(SCOPES)
        if not scopes:
            raise CommandError("Name at least one --scope, or pass --all-scopes.")
        try:
            token, raw = api_token_create(name=name, scopes=scopes)
        except ValidationError as exc:
            raise CommandError(exc.messages[0]) from exc
        self.stderr.write(f"Token {token.prefix}… for {name!r} with scopes: {', '.join(token.scopes)}")
        self.stderr.write("It is shown once; store it now.")
        self.stdout.write(raw)

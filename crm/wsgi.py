import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

application = get_wsgi_application()

# Everything loaded so far (Django, the apps, URL patterns) lives as long as the worker: keep it out
# of the collector's full passes, which otherwise walk it all every few requests — about 70 ms each
# under bulk ingestion. https://docs.python.org/3/library/gc.html#gc.freeze
gc.freeze()

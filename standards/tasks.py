from celery import shared_task

from standards import services


@shared_task(name="standards.compliance_watch")
def compliance_watch_task():
    """Beat: re-judge conversations whose clock may be running; records breaches and warnings."""
    return services.compliance_watch()


@shared_task(name="standards.conversations_compliance_evaluate")
def conversations_compliance_evaluate_task(conversation_ids):
    """Judge the given conversations now (e.g. after a bulk import)."""
    services.conversations_compliance_evaluate(conversation_ids=list(conversation_ids))

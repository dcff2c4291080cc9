"""The two groups standards work with: CX leads edit and publish; agents read,
acknowledge, propose and comment."""

from django.db import migrations

CX_LEADS = "CX leads"
AGENTS = "Agents"

PERMISSIONS = {
    CX_LEADS: [
        "view_standard", "add_standard", "change_standard", "publish_standard",
        "view_standardversion",
        "view_businesscalendar", "add_businesscalendar", "change_businesscalendar", "delete_businesscalendar",
        "view_holiday", "add_holiday", "change_holiday", "delete_holiday",
        "view_acknowledgement", "add_acknowledgement",
        "view_proposal", "add_proposal", "decide_proposal",
        "view_proposalcomment", "add_proposalcomment",
        "view_evaluation",
        "view_cannedresponse", "add_cannedresponse", "change_cannedresponse", "delete_cannedresponse",
        "view_cannedresponsevariant", "add_cannedresponsevariant", "change_cannedresponsevariant",
        "delete_cannedresponsevariant",
        "view_cannedresponseuse",
    ],
    AGENTS: [
        "view_standard", "view_standardversion", "view_businesscalendar", "view_holiday",
        "view_acknowledgement", "add_acknowledgement",
        "view_proposal", "add_proposal",
        "view_proposalcomment", "add_proposalcomment",
        "view_evaluation",
        "view_cannedresponse", "view_cannedresponsevariant",
    ],
}
# Agents open customers and their interactions in the admin too.
READ_ELSEWHERE = {
    ("customers", "customer"), ("customers", "identity"), ("customers", "segment"),
    ("interactions", "interaction"), ("interactions", "conversation"),
}


def groups_create(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally made after all migrations; this one needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = list(Permission.objects.filter(content_type__app_label="standards", codename__in=codenames))
        for app_label, model in READ_ELSEWHERE:
            permissions += list(
                Permission.objects.filter(content_type__app_label=app_label, codename=f"view_{model}")
            )
        group.permissions.add(*permissions)


def groups_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(PERMISSIONS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("standards", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0001_initial"),
        ("interactions", "0001_initial"),
    ]

    operations = [migrations.RunPython(groups_create, groups_delete)]

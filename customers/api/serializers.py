from rest_framework import serializers

from customers.identities import IDENTITY_KINDS
from customers.models import Customer, Identity, Merge, MergeSuggestion


class IdentityOut(serializers.ModelSerializer):
    class Meta:
        model = Identity
        fields = ["kind", "value", "created_at"]
        read_only_fields = fields


class CustomerOut(serializers.ModelSerializer):
    identities = IdentityOut(many=True, read_only=True)
    segments = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)

    class Meta:
        model = Customer
        fields = ["id", "name", "attributes", "segments", "switching_cost", "identities", "created_at", "updated_at"]
        read_only_fields = fields


class CustomerDetailOut(CustomerOut):
    channel_counts = serializers.SerializerMethodField()
    interaction_count = serializers.SerializerMethodField()
    redirected_from = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()

    class Meta(CustomerOut.Meta):
        fields = [*CustomerOut.Meta.fields, "interaction_count", "channel_counts", "redirected_from", "metrics"]
        read_only_fields = fields

    def get_channel_counts(self, obj) -> dict[str, int]:
        return self.context.get("channel_counts", {})

    def get_interaction_count(self, obj) -> int:
        return sum(self.context.get("channel_counts", {}).values())

    def get_redirected_from(self, obj) -> int | None:
        return self.context.get("redirected_from")

    def get_metrics(self, obj) -> dict | None:
        """The metrics snapshot (as GET /customers/{id}/metrics/ gives it); null until first computed."""
        from metrics.api.serializers import SnapshotOut

        snapshot = self.context.get("metrics")
        return SnapshotOut(snapshot).data if snapshot else None


class IdentityIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=IDENTITY_KINDS)
    value = serializers.CharField(max_length=320)


class CustomerUpdateIn(serializers.Serializer):
    name = serializers.CharField(max_length=200, allow_blank=True, required=False)
    attributes = serializers.DictField(required=False)
    segments = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=100)
    switching_cost = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True, required=False)
    add_identities = IdentityIn(many=True, required=False)

    def validate_add_identities(self, value):
        from customers.identities import IdentityInvalid, identity_normalize

        for index, entry in enumerate(value):
            try:
                identity_normalize(entry["kind"], entry["value"])
            except IdentityInvalid as exc:
                raise serializers.ValidationError({index: exc.message}, code=exc.code) from exc
        return value


class CustomerFilterIn(serializers.Serializer):
    q = serializers.CharField(required=False, max_length=320, help_text="A name, or any identity (normalised).")
    segment = serializers.CharField(required=False, max_length=64)
    unhappy_now = serializers.BooleanField(required=False, allow_null=True, default=None)
    at_risk = serializers.BooleanField(required=False, allow_null=True, default=None)


class MergeIn(serializers.Serializer):
    other = serializers.IntegerField(min_value=1, help_text="The customer merged into this one.")


class MergeOut(serializers.ModelSerializer):
    survivor_id = serializers.IntegerField(read_only=True)
    merged_id = serializers.IntegerField(read_only=True)
    moved = serializers.SerializerMethodField()

    class Meta:
        model = Merge
        fields = ["id", "survivor_id", "merged_id", "reason", "evidence", "moved", "created_at", "undone_at"]
        read_only_fields = fields

    def get_moved(self, obj) -> dict[str, int]:
        return {name: len(ids) for name, ids in obj.moved.items()}


class MergeSuggestionOut(serializers.ModelSerializer):
    customer_a_id = serializers.IntegerField(read_only=True)
    customer_b_id = serializers.IntegerField(read_only=True)
    merge_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = MergeSuggestion
        fields = ["id", "customer_a_id", "customer_b_id", "evidence", "status", "created_at", "decided_at", "merge_id"]
        read_only_fields = fields

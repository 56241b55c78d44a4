"""Privacy for staff integrations: a member's data as JSON, and erasure (the right to be forgotten).

Both need the `privacy` scope (never granted by default); a staff session needs the
`loyalty.erase_member` permission (the `manager` role), checked by the service. Both are audited."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.idempotency import idempotent
from loyalty.api.permissions import request_program
from loyalty.api.schema import IDEMPOTENCY_KEY, problems
from loyalty.models import ApiKey, Scope
from loyalty.selectors.members import member_get
from loyalty.services.audit import audit_record, staff_require
from loyalty.services.privacy import ERASE_PERMISSION, member_erase, member_export


class MemberExportOut(serializers.Serializer):
    exported_at = serializers.DateTimeField()
    program = serializers.JSONField()
    profile = serializers.JSONField(help_text="Personal data as held (after erasure: the placeholders)")
    tier = serializers.JSONField()
    balances = serializers.JSONField()
    expiring = serializers.JSONField()
    orders = serializers.ListField(child=serializers.JSONField())
    ledger = serializers.ListField(child=serializers.JSONField())
    lots = serializers.ListField(child=serializers.JSONField())
    redemptions = serializers.ListField(child=serializers.JSONField())
    reward_claims = serializers.ListField(child=serializers.JSONField())
    birthday_gifts = serializers.ListField(child=serializers.JSONField())
    referral_codes = serializers.ListField(child=serializers.JSONField())
    referred_by = serializers.JSONField(allow_null=True)
    referrals = serializers.ListField(child=serializers.JSONField())
    badges = serializers.ListField(child=serializers.JSONField())
    challenges = serializers.ListField(child=serializers.JSONField())
    tier_history = serializers.ListField(child=serializers.JSONField())
    surveys = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField()), help_text="`sent` and `answers`"
    )
    winback_offers = serializers.ListField(child=serializers.JSONField())
    events = serializers.ListField(child=serializers.JSONField())


class EraseIn(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class EraseOut(serializers.Serializer):
    external_id = serializers.CharField()
    status = serializers.CharField()
    erased_at = serializers.DateTimeField(source="closed_at")


def _actor(request):
    """The API key, or the staff user (who needs the erase permission)."""
    if isinstance(request.auth, ApiKey):
        return request.auth
    staff_require(request.user, ERASE_PERMISSION, "export or erase members' personal data")
    return request.user


class MemberExportApi(APIView):
    scope = Scope.PRIVACY

    @extend_schema(
        operation_id="members_export",
        responses={200: MemberExportOut, **problems(404)},
        summary="Everything held about a member, as JSON (needs the privacy scope)",
    )
    def get(self, request, member):
        actor = _actor(request)
        found = member_get(program=request_program(request), external_id=member)
        data = member_export(member=found)
        audit_record(actor=actor, action="member.export", obj=found, program=found.program)
        return Response(data)


class MemberEraseApi(APIView):
    scope = Scope.PRIVACY

    @extend_schema(
        operation_id="members_erase",
        request=EraseIn,
        responses={200: EraseOut, **problems(404)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Erase a member's personal data; amounts stay (needs the privacy scope). Erasing twice is harmless",
    )
    @idempotent
    def post(self, request, member):
        actor = _actor(request)
        found = member_get(program=request_program(request), external_id=member)
        data = EraseIn(data=request.data)
        data.is_valid(raise_exception=True)
        erased = member_erase(member=found, actor=actor, reason=data.validated_data["reason"])
        return Response(EraseOut(erased).data)

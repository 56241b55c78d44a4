"""Members: enroll, read (balances, tier, progress, expiring points), update, ledger history."""

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.fields import ExternalIdField, MoneyField
from loyalty.api.idempotency import idempotent
from loyalty.api.permissions import request_program
from loyalty.api.schema import IDEMPOTENCY_KEY, problems
from loyalty.models import Member, Scope
from loyalty.selectors.members import member_balances, member_expiring, member_get, member_transactions
from loyalty.services.members import member_enroll, member_update
from referrals.models import ReferralCode
from referrals.services import InvalidReferralCode
from referrals.throttles import wrong_code_record, wrong_codes_check
from tiers.selectors import tier_progress


class MemberIn(serializers.Serializer):
    external_id = ExternalIdField()
    email = serializers.EmailField(max_length=254)
    first_name = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")
    birth_date = serializers.DateField(required=False, allow_null=True, default=None)
    locale = serializers.CharField(max_length=10, required=False, allow_blank=True, default="")
    country = serializers.CharField(max_length=2, required=False, allow_blank=True, default="")
    marketing_opt_in = serializers.BooleanField(required=False, default=False)
    referral_code = serializers.CharField(max_length=32, required=False, allow_blank=True, allow_null=True)
    payment_fingerprint = serializers.CharField(
        max_length=128, required=False, allow_blank=True, default="", help_text="Fraud checks of the referral, if any."
    )
    device_id = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")


class MemberPatch(serializers.Serializer):
    email = serializers.EmailField(max_length=254, required=False)
    first_name = serializers.CharField(max_length=80, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=80, required=False, allow_blank=True)
    birth_date = serializers.DateField(required=False, allow_null=True)
    locale = serializers.CharField(max_length=10, required=False, allow_blank=True)
    country = serializers.CharField(max_length=2, required=False, allow_blank=True)
    marketing_opt_in = serializers.BooleanField(required=False)


class MemberTierOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    valid_until = serializers.DateField(allow_null=True)


class BucketsOut(serializers.Serializer):
    available = serializers.IntegerField()
    pending = serializers.IntegerField()
    held = serializers.IntegerField()


class ExpiringOut(serializers.Serializer):
    points = serializers.IntegerField()
    expires_at = serializers.DateTimeField()


class TierProgressOut(serializers.Serializer):
    tier = serializers.CharField(help_text="The tier in effect (code)")
    tier_name = serializers.CharField()
    valid_until = serializers.DateField(allow_null=True, help_text="Last day the status holds (null: no end)")
    pinned = serializers.BooleanField(help_text="Pinned by staff until valid_until")
    next_tier = serializers.CharField(allow_null=True)
    spend = MoneyField(read_only=True, help_text="Qualifying spend in the current window")
    spend_needed = MoneyField(read_only=True, allow_null=True, help_text="Still to spend for the next tier")
    by = serializers.DateField(allow_null=True, help_text="The date the spend must be reached by")
    message = serializers.CharField()


class MemberOut(serializers.Serializer):
    external_id = serializers.CharField()
    email = serializers.EmailField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    birth_date = serializers.DateField(allow_null=True)
    locale = serializers.CharField()
    country = serializers.CharField()
    marketing_opt_in = serializers.BooleanField()
    status = serializers.CharField()
    enrolled_at = serializers.DateTimeField()
    tier = MemberTierOut(allow_null=True)
    balances = serializers.DictField(child=BucketsOut(), help_text='Per point currency, e.g. {"PTS": {...}}')
    expiring = serializers.DictField(child=ExpiringOut(), help_text="Per point currency: the next points to expire")
    tier_progress = TierProgressOut(allow_null=True)
    referral_code = serializers.CharField(allow_null=True)


def member_representation(member: Member, *, now=None) -> dict:
    now = now or timezone.now()
    progress = tier_progress(member=member, now=now)
    code = ReferralCode.objects.filter(member=member, retired_at__isnull=True).values_list("code", flat=True).first()
    return {
        "external_id": member.external_id,
        "email": member.email,
        "first_name": member.first_name,
        "last_name": member.last_name,
        "birth_date": member.birth_date,
        "locale": member.locale,
        "country": member.country,
        "marketing_opt_in": member.marketing_opt_in,
        "status": member.status,
        "enrolled_at": member.enrolled_at,
        "tier": {"code": progress["tier"], "name": progress["tier_name"], "valid_until": progress["valid_until"]}
        if progress
        else None,
        "balances": member_balances(member=member, now=now),
        "expiring": member_expiring(member=member, now=now),
        "tier_progress": progress,
        "referral_code": code,
    }


class MemberListApi(APIView):
    scope = Scope.MEMBERS

    @extend_schema(
        operation_id="members_enroll",
        request=MemberIn,
        responses={201: MemberOut, **problems(400, 404, 409, 422)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Enroll a member",
    )
    @idempotent
    def post(self, request):
        program = request_program(request)
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        context = {
            "payment_fingerprint": fields.pop("payment_fingerprint"),
            "device_id": fields.pop("device_id"),
            "ip": request.META.get("REMOTE_ADDR", ""),
        }
        if fields.get("referral_code"):
            wrong_codes_check(request)
        try:
            member = member_enroll(program=program, referral_context=context, **fields)
        except InvalidReferralCode:
            wrong_code_record(request)
            raise
        return Response(MemberOut(member_representation(member)).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(APIView):
    scope = Scope.MEMBERS

    @extend_schema(operation_id="members_get", responses={200: MemberOut, **problems(404)}, summary="A member")
    def get(self, request, member):
        found = member_get(program=request_program(request), external_id=member)
        return Response(MemberOut(member_representation(found)).data)

    @extend_schema(
        operation_id="members_update",
        request=MemberPatch,
        responses={200: MemberOut, **problems(400, 404, 409)},
        summary="Update profile fields",
    )
    def patch(self, request, member):
        found = member_get(program=request_program(request), external_id=member)
        data = MemberPatch(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        member_update(member=found, **data.validated_data)
        return Response(MemberOut(member_representation(found)).data)


class EntryOut(serializers.Serializer):
    currency = serializers.CharField(source="account.asset.code")
    bucket = serializers.CharField(source="account.kind")
    points = serializers.IntegerField(source="amount")
    balance_after = serializers.IntegerField()


class TransactionOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    points = serializers.SerializerMethodField(help_text="Net change of the member's points (all buckets)")
    balance_after = serializers.SerializerMethodField(help_text="Per bucket, after this transaction")
    entries = EntryOut(many=True, source="member_entries")
    reference = serializers.CharField()
    memo = serializers.CharField()
    order = serializers.CharField(source="order.external_id", allow_null=True, default=None)
    effective_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()

    def get_points(self, obj) -> int:
        return sum(entry.amount for entry in obj.member_entries)

    def get_balance_after(self, obj) -> dict:
        return {entry.account.kind: entry.balance_after for entry in obj.member_entries}


class MemberTransactionsApi(GenericAPIView):
    scope = Scope.MEMBERS
    serializer_class = TransactionOut

    @extend_schema(
        operation_id="members_transactions",
        responses={200: TransactionOut(many=True), **problems(404)},
        summary="The member's ledger history, newest first",
    )
    def get(self, request, member):
        found = member_get(program=request_program(request), external_id=member)
        page = self.paginate_queryset(member_transactions(member=found))
        return self.get_paginated_response(TransactionOut(page, many=True).data)

"""Tiers API: the program's tiers with thresholds and benefits; the birthday choice."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.fields import MoneyField
from loyalty.api.idempotency import idempotent
from loyalty.api.permissions import request_program
from loyalty.api.schema import IDEMPOTENCY_KEY, problems
from loyalty.models import EarnRule, EarnRuleKind, Scope
from loyalty.selectors.members import member_get
from tiers.models import BirthdayChoice, Tier
from tiers.selectors import tier_policy
from tiers.services import birthday_take


class PromotionOut(serializers.Serializer):
    name = serializers.CharField()
    multiplier = serializers.DecimalField(max_digits=6, decimal_places=3)
    starts_at = serializers.DateTimeField(allow_null=True)
    ends_at = serializers.DateTimeField(allow_null=True)


class ProgramTierOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    rank = serializers.IntegerField()
    threshold = MoneyField(read_only=True, help_text="Qualifying spend in the window, base currency")
    earn_multiplier = serializers.DecimalField(max_digits=6, decimal_places=3)
    birthday_points = serializers.IntegerField(help_text="Points instead of the birthday gift (0: gift only)")
    perks = serializers.CharField()
    promotions = PromotionOut(many=True, source="promotions_list")


class TiersOut(serializers.Serializer):
    window = serializers.CharField()
    downgrade_policy = serializers.CharField()
    tiers = ProgramTierOut(many=True)


class TierListApi(APIView):
    scope = Scope.MEMBERS

    @extend_schema(operation_id="tiers_list", responses={200: TiersOut}, summary="The program's tiers and benefits")
    def get(self, request):
        program = request_program(request)
        tiers = list(Tier.objects.filter(program=program).order_by("rank"))
        promotions = EarnRule.objects.filter(
            program=program, kind=EarnRuleKind.PROMOTION, active=True, tier__isnull=False
        )
        for tier in tiers:
            tier.promotions_list = [p for p in promotions if p.tier_id == tier.pk]
        policy = tier_policy(program)
        return Response(
            TiersOut({"window": policy.window, "downgrade_policy": policy.downgrade_policy, "tiers": tiers}).data
        )


class BirthdayIn(serializers.Serializer):
    choice = serializers.ChoiceField(choices=BirthdayChoice.choices)


class BirthdayOut(serializers.Serializer):
    year = serializers.IntegerField()
    choice = serializers.CharField()
    points = serializers.IntegerField()
    coupon_code = serializers.CharField()
    taken_at = serializers.DateTimeField()


class MemberBirthdayApi(APIView):
    scope = Scope.MEMBERS

    @extend_schema(
        operation_id="members_birthday",
        request=BirthdayIn,
        responses={201: BirthdayOut, **problems(404, 409, 422)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Take this year's birthday reward: the gift, or points where the tier offers them",
    )
    @idempotent
    def post(self, request, member):
        found = member_get(program=request_program(request), external_id=member)
        data = BirthdayIn(data=request.data)
        data.is_valid(raise_exception=True)
        gift = birthday_take(member=found, choice=data.validated_data["choice"])
        return Response(BirthdayOut(gift).data, status=status.HTTP_201_CREATED)

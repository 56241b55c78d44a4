"""The rewards catalog and claims."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.fields import MoneyField
from loyalty.api.idempotency import idempotent
from loyalty.api.permissions import request_program
from loyalty.api.schema import IDEMPOTENCY_KEY, problems
from loyalty.models import Reward, RewardKind, Scope
from loyalty.services.rewards import reward_claim


class RewardOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    kind = serializers.CharField()
    cost = serializers.IntegerField(help_text="Points")
    currency = serializers.CharField(source="asset.code")
    value = MoneyField(read_only=True, allow_null=True)
    tier_needed = serializers.CharField(source="min_tier.code", allow_null=True, default=None)
    stock_left = serializers.IntegerField(source="stock", allow_null=True, help_text="null: unlimited")
    limit_per_member = serializers.IntegerField(allow_null=True)
    limit_period = serializers.CharField()


class RewardListApi(GenericAPIView):
    scope = Scope.REWARDS
    serializer_class = RewardOut

    @extend_schema(operation_id="rewards_list", responses={200: RewardOut(many=True)}, summary="The catalog")
    def get(self, request):
        rewards = (
            Reward.objects.filter(program=request_program(request), active=True)
            .exclude(kind=RewardKind.BIRTHDAY_GIFT)
            .select_related("asset", "min_tier")
        )
        page = self.paginate_queryset(rewards)
        return self.get_paginated_response(RewardOut(page, many=True).data)


class ClaimIn(serializers.Serializer):
    member = serializers.CharField(max_length=128)


class ClaimOut(serializers.Serializer):
    id = serializers.IntegerField()
    reward = serializers.IntegerField(source="reward_id")
    member = serializers.CharField(source="member.external_id")
    coupon_code = serializers.CharField()
    points = serializers.IntegerField()
    claimed_at = serializers.DateTimeField()


class RewardClaimApi(APIView):
    scope = Scope.REWARDS

    @extend_schema(
        operation_id="rewards_claim",
        request=ClaimIn,
        responses={201: ClaimOut, **problems(400, 404, 422)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Claim a reward: spends points, issues a coupon code",
    )
    @idempotent
    def post(self, request, pk):
        data = ClaimIn(data=request.data)
        data.is_valid(raise_exception=True)
        claim = reward_claim(
            program=request_program(request), reward_id=pk, member_external_id=data.validated_data["member"]
        )
        return Response(ClaimOut(claim).data, status=status.HTTP_201_CREATED)

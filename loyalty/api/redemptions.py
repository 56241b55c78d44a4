"""Points as payment: hold, capture, void."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.fields import MoneyField
from loyalty.api.idempotency import idempotent
from loyalty.api.permissions import request_program
from loyalty.api.schema import IDEMPOTENCY_KEY, problems
from loyalty.models import Scope
from loyalty.services.redemptions import redemption_capture, redemption_hold, redemption_void


class HoldIn(serializers.Serializer):
    member = serializers.CharField(max_length=128)
    points = serializers.IntegerField(min_value=1, max_value=10**12)
    currency = serializers.CharField(max_length=12, required=False, help_text="Point currency; default the primary")
    order_external_id = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    order_amount = MoneyField(
        required=False, positive=True, help_text="The order's merchandise, to check the minimum order and the cap"
    )
    ttl_seconds = serializers.IntegerField(
        min_value=1, max_value=settings.LOYALTY["MAX_HOLD_TTL_SECONDS"], required=False
    )


class RedemptionOut(serializers.Serializer):
    id = serializers.IntegerField()
    member = serializers.CharField(source="member.external_id")
    status = serializers.CharField()
    points = serializers.IntegerField()
    currency = serializers.CharField(source="asset.code")
    value = MoneyField(read_only=True)
    order_external_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    settled_at = serializers.DateTimeField(allow_null=True)


class RedemptionListApi(APIView):
    scope = Scope.REDEMPTIONS

    @extend_schema(
        operation_id="redemptions_hold",
        request=HoldIn,
        responses={201: RedemptionOut, **problems(400, 404, 422)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Hold points for a payment (available -> held)",
    )
    @idempotent
    def post(self, request):
        data = HoldIn(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        amount = d.get("order_amount")
        redemption = redemption_hold(
            program=request_program(request),
            member_external_id=d["member"],
            points=d["points"],
            asset_code=d.get("currency"),
            order_external_id=d["order_external_id"],
            order_amount=amount[0] if amount else None,
            order_currency=amount[1] if amount else None,
            ttl_seconds=d.get("ttl_seconds"),
        )
        return Response(RedemptionOut(redemption).data, status=status.HTTP_201_CREATED)


class RedemptionCaptureApi(APIView):
    scope = Scope.REDEMPTIONS

    @extend_schema(
        operation_id="redemptions_capture",
        request=None,
        responses={200: RedemptionOut, **problems(404, 422)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Capture a hold (held -> redeemed)",
    )
    @idempotent
    def post(self, request, pk):
        redemption = redemption_capture(program=request_program(request), redemption_id=pk)
        return Response(RedemptionOut(redemption).data)


class RedemptionVoidApi(APIView):
    scope = Scope.REDEMPTIONS

    @extend_schema(
        operation_id="redemptions_void",
        request=None,
        responses={200: RedemptionOut, **problems(404, 422)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Void a hold (points back to available)",
    )
    @idempotent
    def post(self, request, pk):
        redemption = redemption_void(program=request_program(request), redemption_id=pk)
        return Response(RedemptionOut(redemption).data)

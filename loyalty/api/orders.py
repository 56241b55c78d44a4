"""Orders: quote (no side effects), place, read, refund, cancel."""

from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.db.models import prefetch_related_objects
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty import errors
from loyalty.api.errors import flatten_errors, problem
from loyalty.api.fields import BoundedJSONField, CurrencyField, ExternalIdField, MoneyField
from loyalty.api.idempotency import idempotent
from loyalty.api.permissions import request_program
from loyalty.api.schema import IDEMPOTENCY_KEY, Problem, problems
from loyalty.models import Order, OrderStatus, Scope
from loyalty.money import has_valid_precision, money_dict
from loyalty.services.earning import ZERO, LineDraft, OrderDraft
from loyalty.services.ingestion import MAX_BATCH, orders_place_bulk
from loyalty.services.orders import RefundLine, order_cancel, order_place, order_quote, order_refund

MAX_LINES = 500
FUTURE_TOLERANCE = timedelta(minutes=10)


class LineIn(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    category = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    quantity = serializers.IntegerField(min_value=1, max_value=100_000)
    unit_price = MoneyField(positive=True)
    discount = MoneyField(required=False)
    gift_card = serializers.BooleanField(required=False, default=False, help_text="Gift cards never earn.")


class OrderIn(serializers.Serializer):
    external_id = ExternalIdField(reserved=frozenset({"quote", "batch"}))  # /orders/quote/, /orders/batch/
    member = serializers.CharField(max_length=128, help_text="The member's external_id")
    currency = CurrencyField()
    lines = LineIn(many=True, allow_empty=False, max_length=MAX_LINES)
    shipping = MoneyField(required=False)
    tax = MoneyField(required=False)
    placed_at = serializers.DateTimeField(required=False, help_text="ISO 8601 with offset; default: now")
    payment_fingerprint = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    device_id = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    metadata = BoundedJSONField(required=False, default=dict, max_bytes=4096, help_text="At most 4 KB of JSON")

    def validate(self, data):
        currency = data["currency"]
        problems_ = {}

        def check(path, value):
            amount, money_currency = value
            if money_currency and money_currency != currency:
                problems_[path] = f"must be in the order's currency {currency}"
            elif not has_valid_precision(amount, currency):
                problems_[path] = f"too many decimals for {currency}"
            return amount

        lines = []
        for i, line in enumerate(data["lines"]):
            unit_price = check(f"lines[{i}].unit_price", line["unit_price"])
            discount = check(f"lines[{i}].discount", line.get("discount", (ZERO, None)))
            if discount > unit_price * line["quantity"]:
                problems_[f"lines[{i}].discount"] = "more than the line's price"
            lines.append(
                LineDraft(
                    sku=line["sku"],
                    category=line["category"],
                    quantity=line["quantity"],
                    unit_price=unit_price,
                    discount=discount,
                    gift_card=line["gift_card"],
                )
            )
        shipping = check("shipping", data.get("shipping", (ZERO, None)))
        tax = check("tax", data.get("tax", (ZERO, None)))
        placed_at = data.get("placed_at")
        if placed_at and placed_at > timezone.now() + FUTURE_TOLERANCE:
            problems_["placed_at"] = "in the future"
        if problems_:
            raise serializers.ValidationError(problems_)
        data["draft"] = OrderDraft(
            external_id=data["external_id"],
            member=data["member"],
            currency=currency,
            lines=tuple(lines),
            shipping=shipping,
            tax=tax,
            placed_at=placed_at,
            payment_fingerprint=data["payment_fingerprint"],
            device_id=data["device_id"],
            metadata=data["metadata"],
        )
        return data


class LineOut(serializers.Serializer):
    sku = serializers.CharField()
    category = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = MoneyField(read_only=True)
    discount = MoneyField(read_only=True)
    net = MoneyField(read_only=True)
    gift_card = serializers.BooleanField()
    refunded_quantity = serializers.IntegerField()


class RefundOut(serializers.Serializer):
    external_id = serializers.CharField()
    kind = serializers.CharField()
    amount = MoneyField(read_only=True)
    merchandise = MoneyField(read_only=True)
    spend_reversed = MoneyField(read_only=True, source="spend_reversed_base")
    points_due = serializers.IntegerField()
    points_reversed = serializers.IntegerField()
    points_unrecovered = serializers.IntegerField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class OrderOut(serializers.Serializer):
    external_id = serializers.CharField()
    member = serializers.CharField(source="member.external_id")
    status = serializers.SerializerMethodField()
    placed_at = serializers.DateTimeField()
    currency = serializers.CharField()
    fx_rate = serializers.DecimalField(max_digits=18, decimal_places=8, help_text="Snapshot at placement")
    merchandise = MoneyField(read_only=True)
    shipping = MoneyField(read_only=True)
    tax = MoneyField(read_only=True)
    total = MoneyField(read_only=True)
    points_payment = MoneyField(read_only=True)
    qualifying = MoneyField(read_only=True)
    qualifying_base = MoneyField(read_only=True)
    spend_base = MoneyField(read_only=True, help_text="Qualifying spend net of refunds, base currency")
    refunded = MoneyField(read_only=True)
    points_earned = serializers.IntegerField()
    points_reversed = serializers.IntegerField()
    breakdown = serializers.ListField(source="earn_breakdown", child=serializers.DictField())
    available_at = serializers.DateTimeField(help_text="When the points mature")
    lines = LineOut(many=True)
    refunds = RefundOut(many=True)

    def get_status(self, order) -> str:
        if order.status == OrderStatus.PENDING and order.available_at <= timezone.now():
            return OrderStatus.COMPLETED  # matured; the job may not have posted it yet
        return order.status


def orders_validate(bodies: Iterable) -> Iterator[tuple[OrderDraft | None, Exception | None]]:
    """Validate many order bodies with one serializer, whose fields are built once instead of deep-copied
    for every order (batches and imports); -> (draft, None) or (None, the error) per body."""
    serializer = OrderIn()
    for body in bodies:
        try:
            yield serializer.run_validation(body)["draft"], None
        except (serializers.ValidationError, errors.LoyaltyError) as exc:
            yield None, exc


def order_representation(order: Order) -> dict:
    order = Order.objects.select_related("member").prefetch_related("lines", "refunds").get(pk=order.pk)
    return OrderOut(order).data


class RedeemableOut(serializers.Serializer):
    points = serializers.IntegerField()
    value = MoneyField(read_only=True)


class QuoteOut(serializers.Serializer):
    points = serializers.IntegerField()
    breakdown = serializers.ListField(child=serializers.DictField())
    qualifying = MoneyField(read_only=True)
    qualifying_base = MoneyField(read_only=True)
    fx_rate = serializers.DecimalField(max_digits=18, decimal_places=8)
    redeemable = RedeemableOut()


class OrderQuoteApi(APIView):
    scope = Scope.ORDERS

    @extend_schema(
        operation_id="orders_quote",
        request=OrderIn,
        responses={200: QuoteOut, **problems(400, 404, 422)},
        parameters=[IDEMPOTENCY_KEY],
        summary="What an order would earn; no side effects",
    )
    @idempotent
    def post(self, request):
        program = request_program(request)
        data = OrderIn(data=request.data)
        data.is_valid(raise_exception=True)
        draft = data.validated_data["draft"]
        quote = order_quote(program=program, draft=draft)
        base = program.base_currency
        return Response(
            QuoteOut(
                {
                    "points": quote.earning.points,
                    "breakdown": quote.earning.breakdown,
                    "qualifying": money_dict(quote.earning.qualifying, draft.currency),
                    "qualifying_base": money_dict(quote.earning.qualifying_base, base),
                    "fx_rate": quote.fx_rate,
                    "redeemable": {
                        "points": quote.redeemable_points,
                        "value": money_dict(quote.redeemable_value, base),
                    },
                }
            ).data
        )


class OrderListApi(APIView):
    scope = Scope.ORDERS

    @extend_schema(
        operation_id="orders_place",
        request=OrderIn,
        responses={201: OrderOut, **problems(400, 404, 409, 422)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Place an order: points land pending",
    )
    @idempotent
    def post(self, request):
        program = request_program(request)
        data = OrderIn(data=request.data)
        data.is_valid(raise_exception=True)
        order = order_place(program=program, draft=data.validated_data["draft"])
        return Response(OrderOut(order).data, status=status.HTTP_201_CREATED)


class OrderDetailApi(APIView):
    scope = Scope.ORDERS

    @extend_schema(operation_id="orders_get", responses={200: OrderOut, **problems(404)}, summary="An order")
    def get(self, request, external_id):
        order = (
            Order.objects.select_related("member")
            .prefetch_related("lines", "refunds")
            .filter(program=request_program(request), external_id=external_id)
            .first()
        )
        if order is None:
            raise errors.OrderNotFound(f"No order {external_id}")
        return Response(OrderOut(order).data)


class RefundLineIn(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=100_000)


class RefundIn(serializers.Serializer):
    external_id = serializers.CharField(max_length=128)
    amount = MoneyField(required=False, positive=True, help_text="Money back, in the order's currency")
    lines = RefundLineIn(many=True, required=False, max_length=MAX_LINES)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, data):
        if "amount" not in data and not data.get("lines"):
            raise serializers.ValidationError({"amount": "Give an amount or lines."})
        return data


class RefundCreatedOut(RefundOut):
    order = serializers.CharField(source="order.external_id")
    order_status = serializers.CharField(source="order.status")


class OrderRefundApi(APIView):
    scope = Scope.ORDERS

    @extend_schema(
        operation_id="orders_refund",
        request=RefundIn,
        responses={201: RefundCreatedOut, **problems(400, 404, 409, 422)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Refund part of an order; points are clawed back pro rata",
    )
    @idempotent
    def post(self, request, external_id):
        program = request_program(request)
        data = RefundIn(data=request.data)
        data.is_valid(raise_exception=True)
        amount = data.validated_data.get("amount")
        if amount:
            order_currency = (
                Order.objects.filter(program=program, external_id=external_id)
                .values_list("currency", flat=True)
                .first()
            )
            if order_currency and amount[1] and amount[1] != order_currency:
                raise errors.InvalidInput(
                    f"The refund must be in the order's currency {order_currency}",
                    errors=[{"field": "amount.currency", "message": "not the order's currency"}],
                )
            if order_currency and not has_valid_precision(amount[0], order_currency):
                raise errors.InvalidInput(
                    f"Too many decimals for {order_currency}",
                    errors=[{"field": "amount", "message": f"too many decimals for {order_currency}"}],
                )
        refund = order_refund(
            program=program,
            order_external_id=external_id,
            refund_external_id=data.validated_data["external_id"],
            amount=amount[0] if amount else None,
            lines=[RefundLine(sku=x["sku"], quantity=x["quantity"]) for x in data.validated_data.get("lines", [])],
            reason=data.validated_data["reason"],
        )
        return Response(RefundCreatedOut(refund).data, status=status.HTTP_201_CREATED)


class CancelIn(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class OrderCancelApi(APIView):
    scope = Scope.ORDERS

    @extend_schema(
        operation_id="orders_cancel",
        request=CancelIn,
        responses={200: OrderOut, **problems(404, 422)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Cancel: reverse the order's points and tier spend",
    )
    @idempotent
    def post(self, request, external_id):
        data = CancelIn(data=request.data or {})
        data.is_valid(raise_exception=True)
        refund = order_cancel(
            program=request_program(request), order_external_id=external_id, reason=data.validated_data["reason"]
        )
        return Response(order_representation(refund.order))


class BatchIn(serializers.Serializer):
    orders = serializers.ListField(
        child=serializers.DictField(),
        allow_empty=False,
        max_length=MAX_BATCH,
        help_text=f"Up to {MAX_BATCH} orders, each shaped like POST /orders/",
    )


class BatchResultOut(serializers.Serializer):
    index = serializers.IntegerField()
    external_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["created", "exists", "rejected"])
    order = OrderOut(allow_null=True)
    problem = Problem(allow_null=True)


class BatchOut(serializers.Serializer):
    created = serializers.IntegerField()
    exists = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = BatchResultOut(many=True)


class OrderBatchApi(APIView):
    scope = Scope.ORDERS

    @extend_schema(
        operation_id="orders_batch",
        request=BatchIn,
        responses={200: BatchOut, **problems(400)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Place up to 1,000 orders: each gets its own result; a bad one does not fail the others",
    )
    @idempotent
    def post(self, request):
        program = request_program(request)
        batch = BatchIn(data=request.data)
        batch.is_valid(raise_exception=True)
        raw = batch.validated_data["orders"]
        results: list[dict | None] = [None] * len(raw)
        drafts, positions = [], []
        for i, (body, (draft, exc)) in enumerate(zip(raw, orders_validate(raw), strict=True)):
            if exc is not None:
                results[i] = _rejected(i, body.get("external_id"), exc)
                continue
            drafts.append(draft)
            positions.append(i)
        placed = orders_place_bulk(program=program, drafts=drafts)
        prefetch_related_objects([p.order for p in placed if p.order], "lines", "refunds")
        for i, result in zip(positions, placed, strict=True):
            results[i] = (
                _rejected(i, result.external_id, result.error)
                if result.error
                else {
                    "index": i,
                    "external_id": result.external_id,
                    "status": result.status,
                    "order": result.order,
                    "problem": None,
                }
            )
        counts = {status: sum(r["status"] == status for r in results) for status in ("created", "exists", "rejected")}
        return Response(BatchOut({**counts, "results": results}).data)


def _rejected(index: int, external_id, exc) -> dict:
    if isinstance(exc, errors.LoyaltyError):
        body = problem(exc.status, exc.code, exc.title, exc.message, **exc.extra)
    else:
        fields = flatten_errors(exc.detail)
        body = problem(
            400,
            "validation_error",
            "The order is not valid",
            "; ".join(f"{e['field']}: {e['message']}" for e in fields[:5]),
            errors=fields,
        )
    return {
        "index": index,
        "external_id": external_id if isinstance(external_id, str) else None,
        "status": "rejected",
        "order": None,
        "problem": body,
    }

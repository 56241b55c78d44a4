"""Orders: quote (no side effects), place, read, refund, cancel."""

from collections.abc import Iterable, Iterator
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db.models import prefetch_related_objects
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty import errors
from loyalty.api.errors import flatten_errors, problem
from loyalty.api.fields import MAX_AMOUNT, BoundedJSONField, CurrencyField, ExternalIdField, MoneyField
from loyalty.api.idempotency import idempotent
from loyalty.api.permissions import request_program
from loyalty.api.schema import IDEMPOTENCY_KEY, Problem, problems
from loyalty.models import Order, OrderLine, OrderStatus, Scope
from loyalty.money import Money, has_valid_precision, money_dict
from loyalty.services.earning import ZERO, LineDraft, OrderDraft
from loyalty.services.ingestion import MAX_BATCH, orders_place_bulk
from loyalty.services.orders import RefundLine, order_cancel, order_place, order_quote, order_refund
from loyalty.services.rows import collection_deferred

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
    """Validate many order bodies (batches and imports); -> (draft, None) or (None, the error) per body.

    A body in the plain shape every checkout sends is read by `OrderLean`, which gives the draft
    `OrderIn` would give at a fraction of its cost; any other body (a bad one, or one `OrderIn` would
    have to coerce) goes through `OrderIn`, whose fields are built once for all the bodies, so every
    error is worded by the serializer."""
    serializer = OrderIn()
    lean = OrderLean(serializer)
    for body in bodies:
        draft = lean.draft(body)
        if draft is not None:
            yield draft, None
            continue
        try:
            yield serializer.run_validation(body)["draft"], None
        except (serializers.ValidationError, errors.LoyaltyError) as exc:
            yield None, exc


class _Undecided(Exception):
    """Not a body OrderLean reads: OrderIn decides."""


class OrderLean:
    """`OrderIn`'s validation for bodies in the plain shape: strings as they are (ASCII, trimmed),
    integers, booleans, amounts as strings or integers (or {"amount", "currency"} in the order's
    currency), all valid. -> the very draft `OrderIn` gives, or None when the body is anything else
    (then OrderIn decides, and words the errors). tests/loyalty/test_ingestion.py holds the two equal."""

    def __init__(self, serializer: OrderIn):
        fields, line = serializer.fields, serializer.fields["lines"].child.fields
        self.reserved = fields["external_id"].reserved
        self.id_max, self.member_max = fields["external_id"].max_length, fields["member"].max_length
        self.fingerprint_max, self.device_max = fields["payment_fingerprint"].max_length, fields["device_id"].max_length
        self.sku_max, self.category_max = line["sku"].max_length, line["category"].max_length
        self.quantity_min, self.quantity_max = line["quantity"].min_value, line["quantity"].max_value
        self.lines_max = serializer.fields["lines"].max_length
        self.placed_at, self.metadata = fields["placed_at"], fields["metadata"]

    def draft(self, body) -> OrderDraft | None:
        try:
            return self._draft(body)
        except (_Undecided, serializers.ValidationError, errors.LoyaltyError):
            return None

    def _draft(self, body) -> OrderDraft:
        if type(body) is not dict:
            raise _Undecided
        external_id = _text(body.get("external_id"), self.id_max)
        if "/" in external_id or external_id in self.reserved:
            raise _Undecided
        currency = body.get("currency")
        if type(currency) is not str or len(currency) != 3 or currency not in settings.CURRENCIES:
            raise _Undecided
        lines = body.get("lines")
        if type(lines) is not list or not 0 < len(lines) <= self.lines_max:
            raise _Undecided
        placed_at = None
        if "placed_at" in body:
            placed_at = self.placed_at.run_validation(body["placed_at"])
            if placed_at > timezone.now() + FUTURE_TOLERANCE:
                raise _Undecided
        return OrderDraft(
            external_id=external_id,
            member=_text(body.get("member"), self.member_max),
            currency=currency,
            lines=tuple([self._line(line, currency) for line in lines]),
            shipping=_amount(body["shipping"], currency) if "shipping" in body else ZERO,
            tax=_amount(body["tax"], currency) if "tax" in body else ZERO,
            placed_at=placed_at,
            payment_fingerprint=_text(body.get("payment_fingerprint", ""), self.fingerprint_max, blank=True),
            device_id=_text(body.get("device_id", ""), self.device_max, blank=True),
            metadata=self.metadata.run_validation(body["metadata"]) if "metadata" in body else {},
        )

    def _line(self, line, currency: str) -> LineDraft:
        if type(line) is not dict:
            raise _Undecided
        quantity = line.get("quantity")
        if type(quantity) is not int or not self.quantity_min <= quantity <= self.quantity_max:
            raise _Undecided
        unit_price = _amount(line.get("unit_price"), currency, positive=True)
        discount = _amount(line["discount"], currency) if "discount" in line else ZERO
        if discount > unit_price * quantity:
            raise _Undecided
        gift_card = line.get("gift_card", False)
        if type(gift_card) is not bool:
            raise _Undecided
        return LineDraft(
            sku=_text(line.get("sku"), self.sku_max),
            category=_text(line.get("category", ""), self.category_max, blank=True),
            quantity=quantity,
            unit_price=unit_price,
            discount=discount,
            gift_card=gift_card,
        )


def _text(value, max_length: int, *, blank: bool = False) -> str:
    """A string DRF's CharField keeps as it is: printable ASCII (no NUL, no surrogate), nothing to trim."""
    if type(value) is not str or len(value) > max_length or not (value.isascii() and value.isprintable()):
        raise _Undecided
    if not value:
        if blank:
            return value
        raise _Undecided
    if value[0] == " " or value[-1] == " ":
        raise _Undecided
    return value


def _amount(value, currency: str, *, positive: bool = False) -> Decimal:
    """What MoneyField and OrderIn.validate make of an amount in the order's currency, when valid."""
    if type(value) is dict:
        if value.get("currency") and value.get("currency") != currency:
            raise _Undecided
        value = value.get("amount")
    if type(value) is str:
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise _Undecided from None
    elif type(value) is int:
        amount = Decimal(str(value))
    else:
        raise _Undecided
    if not amount.is_finite() or amount < 0 or (positive and amount == 0) or amount > MAX_AMOUNT:
        raise _Undecided
    if not has_valid_precision(amount, currency):
        raise _Undecided
    return amount


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
        with collection_deferred():  # the whole batch: its bodies, drafts, rows and answers
            return self._post(request)

    def _post(self, request):
        program = request_program(request)
        raw = batch_orders(request.data)
        if raw is None:
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
        # Orders placed by this batch are shown from what it wrote (their lines are in memory, they have
        # no refunds); orders that were there already are read with their lines and refunds.
        there = [p.order for p in placed if p.order is not None and p.lines is None]
        prefetch_related_objects(there, "lines", "refunds")
        shown = iter(OrderOut(there, many=True).data)
        tz = timezone.get_current_timezone()
        for i, result in zip(positions, placed, strict=True):
            if result.error:
                results[i] = _rejected(i, result.external_id, result.error)
                continue
            results[i] = {
                "index": i,
                "external_id": result.external_id,
                "status": result.status,
                "order": order_out_new(result.order, result.lines, tz) if result.lines is not None else next(shown),
                "problem": None,
            }
        counts = {status: sum(r["status"] == status for r in results) for status in ("created", "exists", "rejected")}
        return Response({**counts, "results": batch_results_out(results)})


def batch_results_out(results: list[dict]) -> list:
    """BatchOut's `results`, with each order already shown (`order_out_new` or OrderOut): the rows of
    placed orders are plain values; rejected rows go through BatchResultOut (their problem's shape)."""
    rejected = iter(BatchResultOut([r for r in results if r["order"] is None], many=True).data)
    return [
        {
            "index": int(r["index"]),
            "external_id": str(r["external_id"]),
            "status": r["status"],
            "order": r["order"],
            "problem": None,
        }
        if r["order"] is not None
        else next(rejected)
        for r in results
    ]


def batch_orders(data) -> list[dict] | None:
    """BatchIn's `orders` for a body that is valid as it is (1 to MAX_BATCH JSON objects): the same
    objects, as BatchIn would copy them; None for any other body (BatchIn answers it)."""
    orders = data.get("orders") if type(data) is dict else None
    if type(orders) is list and 0 < len(orders) <= MAX_BATCH and all(type(order) is dict for order in orders):
        return orders
    return None


_FX_RATE = OrderOut().fields["fx_rate"]


def _datetime(value, tz) -> str:
    """DRF's DateTimeField.to_representation (ISO 8601 in the current time zone), the zone looked up
    once per batch instead of per value."""
    text = value.astimezone(tz).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def order_out_new(order: Order, lines: list[OrderLine], tz) -> dict:
    """`OrderOut(order).data` for an order placed just now, whose lines are given and which has no
    refunds: the same values without DRF's machinery per field, or a Money built per amount (a
    batch shows a thousand). `tz` is the current time zone. tests/loyalty/test_ingestion.py holds
    it equal to OrderOut."""
    values = order.__dict__
    currency, base = order.currency, order.base_currency
    status = order.status
    if status == OrderStatus.PENDING and order.available_at <= timezone.now():
        status = OrderStatus.COMPLETED  # OrderOut.get_status
    return {
        "external_id": str(order.external_id),
        "member": str(order.member.external_id),
        "status": status,
        "placed_at": _datetime(order.placed_at, tz),
        "currency": str(currency),
        "fx_rate": _FX_RATE.to_representation(order.fx_rate),
        "merchandise": money_dict(_amount_of(values["merchandise"]), currency),
        "shipping": money_dict(_amount_of(values["shipping"]), currency),
        "tax": money_dict(_amount_of(values["tax"]), currency),
        "total": money_dict(_amount_of(values["total"]), currency),
        "points_payment": money_dict(_amount_of(values["points_payment"]), currency),
        "qualifying": money_dict(_amount_of(values["qualifying"]), currency),
        "qualifying_base": money_dict(_amount_of(values["qualifying_base"]), base),
        "spend_base": money_dict(_amount_of(values["spend_base"]), base),
        "refunded": money_dict(_amount_of(values["refunded"]), currency),
        "points_earned": int(order.points_earned),
        "points_reversed": int(order.points_reversed),
        "breakdown": [None if item is None else {str(k): v for k, v in item.items()} for item in order.earn_breakdown],
        "available_at": _datetime(order.available_at, tz),
        "lines": [
            {
                "sku": str(line.sku),
                "category": str(line.category),
                "quantity": int(line.quantity),
                "unit_price": money_dict(_amount_of(line.__dict__["unit_price"]), line.currency),
                "discount": money_dict(_amount_of(line.__dict__["discount"]), line.currency),
                "net": money_dict(_amount_of(line.__dict__["net"]), line.currency),
                "gift_card": bool(line.gift_card),
                "refunded_quantity": int(line.refunded_quantity),
            }
            for line in lines
        ],
        "refunds": [],
    }


def _amount_of(value):
    """A MoneyField's stored value (a Decimal, or a Money once read through the field) as an amount."""
    return value.amount if isinstance(value, Money) else value


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

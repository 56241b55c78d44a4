"""Custom events from the shop (e.g. review.posted): stored, then evaluated by badges and challenges."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.fields import BoundedJSONField
from loyalty.api.idempotency import idempotent
from loyalty.api.permissions import request_program
from loyalty.api.schema import IDEMPOTENCY_KEY, problems
from loyalty.models import Scope
from loyalty.services.events import event_record


class EventIn(serializers.Serializer):
    id = serializers.CharField(max_length=128, required=False, help_text="The shop's event id: a repeat is ignored")
    member = serializers.CharField(max_length=128)
    type = serializers.RegexField(
        r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$", max_length=64, help_text="Dotted lower case, e.g. review.posted"
    )
    occurred_at = serializers.DateTimeField(required=False)
    properties = BoundedJSONField(required=False, default=dict, max_bytes=16384, help_text="At most 16 KB of JSON")


class EventOut(serializers.Serializer):
    id = serializers.CharField(source="external_id", allow_null=True)
    event_id = serializers.IntegerField(source="pk")
    member = serializers.CharField(source="member.external_id")
    type = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    properties = serializers.DictField()
    duplicate = serializers.BooleanField(default=False)


class EventListApi(APIView):
    scope = Scope.EVENTS

    @extend_schema(
        operation_id="events_send",
        request=EventIn,
        responses={201: EventOut, 200: EventOut, **problems(400, 404)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Send a custom event (200 if its id was seen before)",
    )
    @idempotent
    def post(self, request):
        data = EventIn(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        event, created = event_record(
            program=request_program(request),
            member_external_id=d["member"],
            type=d["type"],
            occurred_at=d.get("occurred_at"),
            properties=d["properties"],
            external_id=d.get("id"),
        )
        body = EventOut(event).data
        body["duplicate"] = not created
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

"""Badges, challenges and leaderboards."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.idempotency import idempotent
from loyalty.api.permissions import request_program
from loyalty.api.schema import IDEMPOTENCY_KEY, problems
from loyalty.models import Scope
from loyalty.models.gamification import Challenge
from loyalty.selectors.gamification import (
    badges_active,
    challenge_leaderboard,
    challenges_running,
    member_badges,
    member_challenges,
)
from loyalty.selectors.members import member_get
from loyalty.services.gamification import ChallengeNotFound, challenge_join


class BadgeOut(serializers.Serializer):
    code = serializers.CharField(source="badge.code")
    name = serializers.CharField(source="badge.name")
    description = serializers.CharField(source="badge.description")
    icon = serializers.CharField(source="badge.icon")
    earned = serializers.SerializerMethodField()
    awarded_at = serializers.DateTimeField(allow_null=True)
    value = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="Progress towards the target")
    target = serializers.DecimalField(source="badge.target", max_digits=12, decimal_places=2)
    points = serializers.IntegerField(source="badge.points")

    def get_earned(self, row) -> bool:
        return row["awarded_at"] is not None


class MemberBadgesApi(GenericAPIView):
    """Cursor pages like every list, newest badge first; progress is computed for the page only."""

    scope = Scope.MEMBERS
    serializer_class = BadgeOut

    @extend_schema(
        operation_id="members_badges",
        responses={200: BadgeOut(many=True), **problems(404)},
        summary="The program's badges: earned ones and progress towards the others",
    )
    def get(self, request, member):
        found = member_get(program=request_program(request), external_id=member)
        page = self.paginate_queryset(badges_active(program_id=found.program_id))
        return self.get_paginated_response(
            BadgeOut(member_badges(member=found, now=timezone.now(), badges=page), many=True).data
        )


class ChallengeProgressOut(serializers.Serializer):
    id = serializers.IntegerField(source="challenge.pk")
    code = serializers.CharField(source="challenge.code")
    name = serializers.CharField(source="challenge.name")
    description = serializers.CharField(source="challenge.description")
    period_start = serializers.DateTimeField(source="period.start")
    period_end = serializers.DateTimeField(source="period.end")
    opt_in = serializers.BooleanField(source="challenge.opt_in")
    joined = serializers.BooleanField()
    value = serializers.SerializerMethodField()
    target = serializers.DecimalField(source="challenge.target", max_digits=12, decimal_places=2)
    completed_at = serializers.SerializerMethodField()
    reward_points = serializers.IntegerField(source="challenge.reward_points")
    reward_badge = serializers.CharField(source="challenge.reward_badge.code", allow_null=True, default=None)

    def get_value(self, row) -> str:
        return f"{row['progress'].value if row['progress'] else 0:.2f}"

    def get_completed_at(self, row) -> str | None:
        done = row["progress"].completed_at if row["progress"] else None
        return serializers.DateTimeField().to_representation(done) if done else None


class MemberChallengesApi(GenericAPIView):
    """Cursor pages like every list, newest challenge first; progress is read for the page only."""

    scope = Scope.MEMBERS
    serializer_class = ChallengeProgressOut

    @extend_schema(
        operation_id="members_challenges",
        responses={200: ChallengeProgressOut(many=True), **problems(404)},
        summary="Running challenges with the member's progress",
    )
    def get(self, request, member):
        now = timezone.now()
        found = member_get(program=request_program(request), external_id=member)
        page = self.paginate_queryset(challenges_running(program_id=found.program_id, now=now))
        rows = member_challenges(member=found, now=now, challenges=page)
        return self.get_paginated_response(ChallengeProgressOut(rows, many=True).data)


def _challenge(request, pk) -> Challenge:
    challenge = Challenge.objects.filter(program=request_program(request), pk=pk).select_related("program").first()
    if challenge is None:
        raise ChallengeNotFound(f"No challenge {pk}")
    return challenge


class ChallengeJoinApi(APIView):
    scope = Scope.MEMBERS

    @extend_schema(
        operation_id="members_challenges_join",
        request=None,
        responses={201: ChallengeProgressOut, **problems(404, 422)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Opt in to a challenge that needs it; activity counts from now",
    )
    @idempotent
    def post(self, request, member, pk):
        found = member_get(program=request_program(request), external_id=member)
        challenge = _challenge(request, pk)
        challenge_join(challenge=challenge, member=found)
        [row] = member_challenges(member=found, now=timezone.now(), challenges=[challenge])
        return Response(ChallengeProgressOut(row).data, status=status.HTTP_201_CREATED)


class LeaderboardEntryOut(serializers.Serializer):
    rank = serializers.IntegerField()
    name = serializers.CharField(help_text="Masked: first name and initial")
    value = serializers.DecimalField(max_digits=14, decimal_places=2)
    completed = serializers.BooleanField()


class LeaderboardOut(serializers.Serializer):
    challenge = serializers.CharField()
    period_start = serializers.DateTimeField(allow_null=True)
    entries = LeaderboardEntryOut(many=True)
    me = LeaderboardEntryOut(allow_null=True, help_text="The `member` asked for, with their own rank")


class LeaderboardApi(APIView):
    scope = Scope.MEMBERS

    @extend_schema(
        operation_id="challenges_leaderboard",
        responses={200: LeaderboardOut, **problems(404)},
        parameters=[OpenApiParameter("member", str, description="A member's external id: adds their rank")],
        summary="Top members of a challenge (masked names)",
    )
    def get(self, request, pk):
        program = request_program(request)
        challenge = _challenge(request, pk)
        member = (
            member_get(program=program, external_id=request.query_params["member"])
            if request.query_params.get("member")
            else None
        )
        board = challenge_leaderboard(challenge=challenge, now=timezone.now(), member=member)
        return Response(
            LeaderboardOut(
                {
                    "challenge": challenge.code,
                    "entries": board["entries"],
                    "me": board["me"],
                    "period_start": board["period"].start if board["period"] else None,
                }
            ).data
        )

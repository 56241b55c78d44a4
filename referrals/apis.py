"""Referrals API: is a code valid (the referrer's first name only), and a member's referrals."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.permissions import request_program
from loyalty.api.schema import problems
from loyalty.models import Scope
from loyalty.selectors.members import member_get
from referrals.models import Referral
from referrals.services import referral_code_find, referral_policy
from referrals.throttles import ReferralLookupByAddressThrottle, ReferralLookupByKeyThrottle


def masked_name(member) -> str:
    """`Anna K.`: a first name and an initial, never more."""
    first = (member.first_name or "").strip() or "A member"
    initial = (member.last_name or "").strip()[:1]
    return f"{first} {initial}." if initial else first


class CodeOut(serializers.Serializer):
    code = serializers.CharField()
    valid = serializers.BooleanField()
    referrer_first_name = serializers.CharField(allow_null=True)
    referee_points = serializers.IntegerField(allow_null=True, help_text="What the new member gets")


class ReferralCodeApi(APIView):
    scope = Scope.REFERRALS
    throttle_classes = [ReferralLookupByKeyThrottle, ReferralLookupByAddressThrottle]

    @extend_schema(operation_id="referrals_code", responses={200: CodeOut}, summary="Is this referral code valid?")
    def get(self, request, code):
        program = request_program(request)
        found = referral_code_find(program=program, code=code)
        policy = referral_policy(program)
        valid = found is not None and policy.active
        return Response(
            CodeOut(
                {
                    "code": code,
                    "valid": valid,
                    "referrer_first_name": (found.member.first_name or None) if valid else None,
                    "referee_points": policy.referee_points if valid else None,
                }
            ).data
        )


class ReferralOut(serializers.Serializer):
    referee = serializers.SerializerMethodField(help_text="Masked: first name and initial")
    status = serializers.CharField()
    reason = serializers.CharField()
    reward_points = serializers.IntegerField(source="referrer_points", help_text="What the referrer got")
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)

    def get_referee(self, referral) -> str:
        return masked_name(referral.referee)


class MemberReferralsApi(GenericAPIView):
    scope = Scope.MEMBERS
    serializer_class = ReferralOut

    @extend_schema(
        operation_id="members_referrals",
        responses={200: ReferralOut(many=True), **problems(404)},
        summary="The friends a member referred, with status and reward",
    )
    def get(self, request, member):
        found = member_get(program=request_program(request), external_id=member)
        page = self.paginate_queryset(Referral.objects.filter(referrer=found).select_related("referee"))
        return self.get_paginated_response(ReferralOut(page, many=True).data)

from django.urls import path

from referrals import apis

urlpatterns = [
    path("referrals/<str:code>/", apis.ReferralCodeApi.as_view()),
    path("members/<str:member>/referrals/", apis.MemberReferralsApi.as_view()),
]

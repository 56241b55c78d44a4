from django.urls import path

from loyalty.api import events, gamification, members, metrics, orders, privacy, redemptions, rewards

urlpatterns = [
    path("members/", members.MemberListApi.as_view()),
    path("members/<str:member>/", members.MemberDetailApi.as_view()),
    path("members/<str:member>/transactions/", members.MemberTransactionsApi.as_view()),
    path("members/<str:member>/export/", privacy.MemberExportApi.as_view()),
    path("members/<str:member>/erase/", privacy.MemberEraseApi.as_view()),
    path("orders/", orders.OrderListApi.as_view()),
    path("orders/quote/", orders.OrderQuoteApi.as_view()),
    path("orders/batch/", orders.OrderBatchApi.as_view()),
    path("orders/<str:external_id>/", orders.OrderDetailApi.as_view()),
    path("orders/<str:external_id>/refunds/", orders.OrderRefundApi.as_view()),
    path("orders/<str:external_id>/cancel/", orders.OrderCancelApi.as_view()),
    path("redemptions/", redemptions.RedemptionListApi.as_view()),
    path("redemptions/<int:pk>/capture/", redemptions.RedemptionCaptureApi.as_view()),
    path("redemptions/<int:pk>/void/", redemptions.RedemptionVoidApi.as_view()),
    path("rewards/", rewards.RewardListApi.as_view()),
    path("rewards/<int:pk>/claim/", rewards.RewardClaimApi.as_view()),
    path("events/", events.EventListApi.as_view()),
    path("members/<str:member>/badges/", gamification.MemberBadgesApi.as_view()),
    path("members/<str:member>/challenges/", gamification.MemberChallengesApi.as_view()),
    path("members/<str:member>/challenges/<int:pk>/join/", gamification.ChallengeJoinApi.as_view()),
    path("challenges/<int:pk>/leaderboard/", gamification.LeaderboardApi.as_view()),
    path("metrics/summary/", metrics.SummaryApi.as_view()),
    path("metrics/cohorts/", metrics.CohortsApi.as_view()),
    path("metrics/segments/", metrics.SegmentsApi.as_view()),
    path("metrics/at-risk/", metrics.AtRiskApi.as_view()),
    path("surveys/responses/", metrics.SurveyResponseApi.as_view()),
    path("surveys/sends/", metrics.SurveySendApi.as_view()),
]

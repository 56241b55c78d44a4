from django.urls import path

from tiers import apis

urlpatterns = [
    path("tiers/", apis.TierListApi.as_view()),
    path("members/<str:member>/birthday/", apis.MemberBirthdayApi.as_view()),
]

from django.urls import path

from loyalty.portal import views

app_name = "portal"

urlpatterns = [
    path("", views.home_view, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("password/", views.password_reset_view, name="password_reset"),
    path("password/<uidb64>/<token>/", views.PasswordSetView.as_view(), name="password_set"),
    path("join/", views.join_view, name="join_plain"),
    path("join/<str:code>/", views.join_view, name="join"),
    path("language/", views.language_view, name="language"),
    path("history/", views.history_view, name="history"),
    path("rewards/", views.rewards_view, name="rewards"),
    path("rewards/<int:pk>/claim/", views.reward_claim_view, name="reward_claim"),
    path("rewards/claims/<int:pk>/", views.claim_view, name="claim"),
    path("rewards/birthday/", views.birthday_view, name="birthday"),
    path("referrals/", views.referrals_view, name="referrals"),
    path("referrals/<int:pk>/", views.referral_view, name="referral"),
    path("badges/", views.badges_view, name="badges"),
    path("challenges/<int:pk>/join/", views.challenge_join_view, name="challenge_join"),
    path("profile/", views.profile_view, name="profile"),
    path("profile/export/<str:external_id>.json", views.export_view, name="export"),
    path("profile/close/", views.close_view, name="close"),
    path("closed/", views.closed_view, name="closed"),
]

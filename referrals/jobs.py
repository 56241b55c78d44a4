from celery.schedules import crontab

from loyalty.jobs import job


@job("referrals_qualify", every=crontab(minute="*/15"), description="Reward referrals whose first order matured")
def _qualify(now):
    from referrals.services import referrals_qualify

    return referrals_qualify(now)

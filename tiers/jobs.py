from celery.schedules import crontab

from loyalty.jobs import job


@job("tiers_year_end", every=crontab(minute=10, hour="*/6"), description="Year-end tier evaluation (once a year)")
def _year_end(now):
    from tiers.services import tiers_year_end

    return tiers_year_end(now)


@job("tiers_window_lapse", every=crontab(minute=20, hour=0), description="Rolling windows: lapsed tiers re-evaluated")
def _window_lapse(now):
    from tiers.services import tiers_window_lapse

    return tiers_window_lapse(now)


@job("tiers_overrides_end", every=crontab(minute=25, hour=0), description="End staff tier pins past their date")
def _overrides_end(now):
    from tiers.services import tier_overrides_end

    return tier_overrides_end(now)


@job("birthdays", every=crontab(minute=30, hour=6), description="Tell members their birthday reward is waiting")
def _birthdays(now):
    from tiers.services import birthdays_announce

    return birthdays_announce(now)

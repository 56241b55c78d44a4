from datetime import timedelta

import pytest
from django.test import Client

from loyalty.models import Member
from loyalty.services.settlement import points_mature
from tests.conftest import JUNE
from tests.factories import place_order

PASSWORD = "a long passphrase 42"


def set_password(member: Member, password: str = PASSWORD) -> Member:
    user = Member.objects.get(pk=member.pk).user
    user.set_password(password)
    user.save()
    return Member.objects.select_related("program", "user").get(pk=member.pk)


def signed_in(member: Member, password: str = PASSWORD) -> Client:
    client = Client()
    response = client.post("/portal/login/", {"email": member.email, "password": password})
    assert response.status_code == 302, response.content.decode()[:2000]
    return client


@pytest.fixture
def anna(program, member, june):
    """Anna with 700 available points (a matured order) and 100 pending (an order today)."""
    place_order(program, member, "700.00", now=JUNE - timedelta(days=40), external_id="1041")
    points_mature(JUNE)
    place_order(program, member, "100.00", now=JUNE, external_id="1042")
    return set_password(member)


@pytest.fixture
def client_anna(anna):
    return signed_in(anna)


@pytest.fixture
def bob(program, member_factory, june):
    bob = member_factory(external_id="bob", email="bob@example.com", first_name="Bob", last_name="Brown")
    place_order(program, bob, "300.00", now=JUNE - timedelta(days=40), external_id="B-1")
    points_mature(JUNE)
    return set_password(bob)

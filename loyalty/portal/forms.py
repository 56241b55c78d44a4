"""Portal forms. Labels and messages are translated; every rule is checked again by the service."""

from datetime import date

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from loyalty.models import Member


class LoginForm(forms.Form):
    email = forms.EmailField(
        label=_("E-mail"), max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    password = forms.CharField(
        label=_("Password"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class PasswordEmailForm(forms.Form):
    email = forms.EmailField(
        label=_("E-mail"), max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )


class JoinForm(forms.Form):
    email = forms.EmailField(
        label=_("E-mail"), max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    first_name = forms.CharField(
        label=_("First name"), max_length=80, widget=forms.TextInput(attrs={"autocomplete": "given-name"})
    )
    last_name = forms.CharField(
        label=_("Last name"),
        max_length=80,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    marketing_opt_in = forms.BooleanField(label=_("Send me news and offers by e-mail"), required=False)


def _validate_birth_date(value: date | None) -> date | None:
    if value is None:
        return value
    today = date.today()
    if value > today:
        raise forms.ValidationError(_("The birth date cannot be in the future."))
    if value.year < 1900:
        raise forms.ValidationError(_("Enter a birth date after 1900."))
    return value


class ProfileForm(forms.Form):
    first_name = forms.CharField(
        label=_("First name"), max_length=80, widget=forms.TextInput(attrs={"autocomplete": "given-name"})
    )
    last_name = forms.CharField(
        label=_("Last name"),
        max_length=80,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    birth_date = forms.DateField(
        label=_("Birth date"),
        required=False,
        help_text=_("Once saved, only our team can change it."),
        widget=forms.DateInput(attrs={"type": "date", "autocomplete": "bday"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
    )
    locale = forms.ChoiceField(label=_("Language"), choices=settings.LANGUAGES)
    marketing_opt_in = forms.BooleanField(label=_("Send me news and offers by e-mail"), required=False)

    def __init__(self, *args, member: Member, **kwargs):
        super().__init__(*args, **kwargs)
        self.member = member
        if member.birth_date is not None:
            del self.fields["birth_date"]  # set once: only staff change it

    def clean_birth_date(self):
        return _validate_birth_date(self.cleaned_data.get("birth_date"))


class CloseAccountForm(forms.Form):
    password = forms.CharField(
        label=_("Your password"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    confirm = forms.BooleanField(label=_("I understand that this cannot be undone"))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self):
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError(_("The password is not right."))
        return password


class BirthdayForm(forms.Form):
    choice = forms.ChoiceField(choices=[("gift", _("The birthday gift")), ("points", _("Points instead"))])

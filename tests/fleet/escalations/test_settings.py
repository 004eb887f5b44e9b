"""Hook settings refuse what cannot work at start-up, naming the key and what is accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fleet.escalations.errors import SettingsError
from fleet.escalations.runner import Escalator
from fleet.escalations.settings import EmailSettings, EscalationSettings, WebhookSettings

MAIL: dict[str, Any] = {
    "host": "relay.city.example",
    "from_addr": "fleet@city.example",
    "to_addrs": ["ops@city.example"],
}


def test_good_settings_keep_their_values() -> None:
    mail = EmailSettings(**MAIL)
    assert (mail.port, mail.starttls, mail.to_addrs) == (587, False, ("ops@city.example",))  # a tuple now
    settings = EscalationSettings(webhook=WebhookSettings(url="https://hooks.city.example/sla"), email=mail)
    assert settings.enabled
    assert not EscalationSettings().enabled


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: WebhookSettings(url="ftp://hooks.example/x"), "webhook.url"),
        (lambda: WebhookSettings(url="https:///no-host"), "webhook.url"),
        (lambda: WebhookSettings(url="https://h.example", timeout_s=0), "webhook.timeout_s"),
        (lambda: EmailSettings(**{**MAIL, "host": ""}), "email.host"),
        (lambda: EmailSettings(**{**MAIL, "port": 0}), "email.port"),
        (lambda: EmailSettings(**{**MAIL, "port": 70000}), "email.port"),
        (lambda: EmailSettings(**{**MAIL, "from_addr": "fleet"}), "email.from_addr"),
        (lambda: EmailSettings(**{**MAIL, "to_addrs": []}), "email.to_addrs"),
        (lambda: EmailSettings(**{**MAIL, "to_addrs": "ops@city.example"}), "email.to_addrs"),
        (lambda: EmailSettings(**{**MAIL, "to_addrs": ["ops@city.example", "a b@c"]}), "email.to_addrs[1]"),
        (lambda: EmailSettings(**{**MAIL, "username": "fleet"}), "email.password"),
        (lambda: EmailSettings(**{**MAIL, "username": "fleet", "password": "pw-1234"}), "email.starttls"),
        (
            lambda: EmailSettings(
                **{**MAIL, "starttls": True, "username": "fleet", "password": "changethis"}
            ),
            "email.password",
        ),
        (lambda: EmailSettings(**{**MAIL, "ca_file": "/nonexistent/ca.pem"}), "email.ca_file"),
        (lambda: EscalationSettings(every_s=0), "every_s"),
        (lambda: EscalationSettings(retry_after_s=600, retry_max_s=60), "retry_max_s"),
        (
            lambda: EscalationSettings(
                webhook=WebhookSettings(url="https://h.example", timeout_s=200),
                email=EmailSettings(**{**MAIL, "timeout_s": 100}),
                claim_lease_s=300,
            ),
            "claim_lease_s",
        ),
    ],
)
def test_a_bad_setting_is_refused_naming_its_key(make: Any, key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        make()
    assert caught.value.name == key
    assert str(caught.value).startswith(f"{key}=")
    assert "is not accepted: " in str(caught.value)


def test_the_password_is_not_echoed_in_the_error() -> None:
    with pytest.raises(SettingsError) as caught:
        EmailSettings(**{**MAIL, "starttls": True, "username": "fleet", "password": "secret"})
    assert "'secret'" not in str(caught.value)


def test_an_escalator_without_any_hook_is_refused(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(SettingsError) as caught:
        Escalator(engine, EscalationSettings())
    assert caught.value.name == "webhook"
    engine.dispose()


def test_the_password_stays_out_of_the_settings_repr() -> None:
    mail = EmailSettings(**{**MAIL, "starttls": True, "username": "fleet", "password": "relay-pass-81"})
    assert "relay-pass-81" not in repr(EscalationSettings(email=mail))
    assert "username='fleet'" in repr(mail)

"""Webhook rules without servers: who receives what, the retry schedule, signatures, URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from services.notifications.domain.webhooks import (
    AUDIT,
    BEZORGBAAR,
    MET_MAATREGELEN,
    Filter,
    Gebeurtenis,
    OrganisatieOnbekend,
    RetrySchedule,
    adres_toegestaan,
    bereikt,
    secret_text,
    signature,
    url_fout,
    verify,
)
from shared.platform.settings import Settings

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
DOSSIER = uuid4()


def _settings() -> Settings:
    return Settings(database_url="postgresql://u@h/db", nats_url="nats://h:4222")


@pytest.mark.parametrize("rand", [0.0, 0.5, 1.0])
def test_the_default_schedule_retries_for_at_least_24_hours(rand: float) -> None:
    settings = _settings()
    schedule = RetrySchedule(settings.webhook_retry_schedule_s, settings.webhook_jitter)
    moments = [NU]
    for attempt in range(1, 100):
        following = schedule.next_attempt(attempt, moments[-1], rand=lambda: rand)
        if following is None:
            break
        moments.append(following)
    assert len(moments) == schedule.attempts == 8
    assert moments[-1] - moments[0] >= timedelta(hours=24)
    assert schedule.span >= timedelta(hours=24)
    # Exponential-ish: each wait at least as long as the one before.
    waits = [b - a for a, b in itertools.pairwise(moments)]
    assert waits == sorted(waits)


def test_jitter_only_stretches_a_delay() -> None:
    schedule = RetrySchedule((100.0,), jitter=0.1)
    assert schedule.next_attempt(1, NU, rand=lambda: 0.0) == NU + timedelta(seconds=100)
    assert schedule.next_attempt(1, NU, rand=lambda: 1.0) == NU + timedelta(seconds=110)
    assert schedule.next_attempt(2, NU) is None


def test_signature_is_the_standard_webhooks_one() -> None:
    """The test vector of the Standard Webhooks specification's reference libraries."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    body = b'{"test": 2432232314}'
    assert (
        signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_verify_accepts_the_signature_and_refuses_changes_and_old_timestamps() -> None:
    key = b"k" * 32
    secret = secret_text(key)
    body = b'{"id":"e-1"}'
    stamp = int(NU.timestamp())
    headers = {
        "webhook-id": "e-1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(key, "e-1", stamp, body),
    }
    expected = hmac.new(key, f"e-1.{stamp}.".encode() + body, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()
    assert verify(secret, headers, body, NU)
    assert not verify(secret, headers, body + b" ", NU)
    assert not verify(secret, {**headers, "webhook-id": "e-2"}, body, NU)
    assert not verify(secret, headers, body, NU + timedelta(minutes=6))
    assert not verify(secret_text(b"x" * 32), headers, body, NU)


def _werkgever(organisatie: str = "GM0363", types: frozenset[str] | None = None) -> Filter:
    return Filter("werkgever", types, organisatie, None)


def _event(naam: str, organisatie: str | None = "GM0363", vrijgegeven: bool = False) -> Gebeurtenis:
    return Gebeurtenis(naam, DOSSIER, organisatie, vrijgegeven)


def test_a_werkgever_receives_only_its_own_organisations_dossiers() -> None:
    assert bereikt(_werkgever(), _event("ContactOpgenomen"))
    assert not bereikt(_werkgever(), _event("ContactOpgenomen", organisatie="GM0599"))
    assert not bereikt(_werkgever(), Gebeurtenis("ToegangGeweigerd", None, None, False))


def test_a_werkgever_never_receives_the_audit_trail() -> None:
    assert AUDIT <= BEZORGBAAR
    for naam in AUDIT:
        assert not bereikt(_werkgever(), _event(naam)), naam
        assert bereikt(Filter("secretariaat", None, None, None), _event(naam)), naam


def test_a_werkgever_sees_the_measures_once_the_report_is_released() -> None:
    for naam in MET_MAATREGELEN:
        assert not bereikt(_werkgever(), _event(naam, vrijgegeven=False)), naam
        assert bereikt(_werkgever(), _event(naam, vrijgegeven=True)), naam


def test_filters_on_type_and_dossier() -> None:
    only = _werkgever(types=frozenset({"RapportVrijgegeven"}))
    assert bereikt(only, _event("RapportVrijgegeven"))
    assert not bereikt(only, _event("ContactOpgenomen"))
    one = Filter("secretariaat", None, None, DOSSIER)
    assert bereikt(one, _event("ContactOpgenomen"))
    assert not bereikt(one, Gebeurtenis("ContactOpgenomen", uuid4(), "GM0363", False))


def test_own_health_events_never_go_out() -> None:
    for naam in ("WebhookAbonnementGefaald", "WebhookAbonnementHersteld"):
        assert naam not in BEZORGBAAR
        assert not bereikt(Filter("secretariaat", None, None, None), _event(naam, None))


def test_an_unknown_organisation_is_asked_again_not_guessed() -> None:
    with pytest.raises(OrganisatieOnbekend):
        bereikt(_werkgever(), _event("ContactOpgenomen", organisatie=None))
    # Without an organisation filter it does not matter; a refusal may name no real dossier.
    assert bereikt(Filter("secretariaat", None, None, None), _event("ContactOpgenomen", None))
    assert not bereikt(
        Filter("secretariaat", None, "GM0363", None), _event("ToegangGeweigerd", None)
    )


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://hooks.example.org/weerbaar", None),
        ("http://93.184.215.14:8080/hook", None),
        ("http://203.0.113.9/hook", "prive_adres"),  # documentation range: not global
        ("ftp://hooks.example.org/x", "alleen_http_of_https"),
        ("https:///pad", "host_ontbreekt"),
        ("https://user:pw@hooks.example.org/", "geen_inloggegevens_in_url"),
        ("http://127.0.0.1:9000/hook", "prive_adres"),
        ("http://10.0.0.8/hook", "prive_adres"),
        ("http://169.254.169.254/latest/meta-data", "prive_adres"),
        ("http://[::1]/hook", "prive_adres"),
        ("http://localhost/hook", "prive_adres"),
        ("http://hooks.example.org:99999/", "url_ongeldig"),
        ("https://example.org/" + "a" * 2000, "url_te_lang"),
    ],
)
def test_callback_urls(url: str, code: str | None) -> None:
    assert url_fout(url, allow_private=False) == code


def test_loopback_is_allowed_when_configured() -> None:
    assert url_fout("http://127.0.0.1:9000/hook", allow_private=True) is None
    assert url_fout("ftp://127.0.0.1/", allow_private=True) == "alleen_http_of_https"


def test_the_guides_verification_sample_accepts_our_signature() -> None:
    """The Python sample in docs/integrating.md (Webhooks) verifies what the sender signs."""
    guide = (Path(__file__).parents[2] / "docs" / "integrating.md").read_text()
    section = guide.split("### Verify the signature", 1)[1]
    sample = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(sample, "integrating.md", "exec"), namespace)  # noqa: S102 - our own document
    verified = namespace["verified"]
    key = b"s" * 32
    body = b'{"id":"e-9"}'
    stamp = int(time.time())
    headers = {
        "webhook-id": "e-9",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(key, "e-9", stamp, body),
    }
    assert verified(secret_text(key), headers, body)
    assert not verified(secret_text(key), headers, body + b"x")
    old = {**headers, "webhook-timestamp": str(stamp - 600)}
    old["webhook-signature"] = signature(key, "e-9", stamp - 600, body)
    assert not verified(secret_text(key), old, body)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.215.14", True),
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("::ffff:8.8.8.8", True),  # IPv4-mapped: judged by the IPv4 address
        ("64:ff9b::808:808", True),  # NAT64 of a public address
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.0.0.7", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # shared address space (CGNAT)
        ("169.254.169.254", False),  # link-local: the cloud metadata service
        ("0.0.0.0", False),
        ("224.0.0.1", False),  # multicast
        ("239.255.255.250", False),
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("192.0.2.1", False),  # documentation
        ("198.18.0.1", False),  # benchmarking
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),  # unique local
        ("fec0::1", False),  # site-local (deprecated, still not public)
        ("ff02::1", False),  # multicast
        ("2001:db8::1", False),  # documentation
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:169.254.169.254", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),  # 6to4 carrying 127.0.0.1
        ("2002:a00:1::", False),  # 6to4 carrying 10.0.0.1
        ("64:ff9b::7f00:1", False),  # NAT64 carrying 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
    ],
)
def test_which_addresses_a_webhook_may_connect_to(address: str, allowed: bool) -> None:
    assert adres_toegestaan(ipaddress.ip_address(address)) is allowed


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:127.0.0.1]:8005/internal",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://0.0.0.0:8005/",
        "http://sub.localhost/",
        # What a resolver takes as an IPv4 address, written otherwise:
        "http://localhost./",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://0/",
        "http://169.254.169.254./latest/meta-data",
    ],
)
def test_inward_literals_are_refused_when_subscribing(url: str) -> None:
    assert url_fout(url, allow_private=False) == "prive_adres"


@pytest.mark.parametrize(
    "url",
    ["https://a\x00b.example/x", "https://127.0.0.1\x00/x", "https://exa mple/x", "https://a\tb/x"],
)
def test_a_url_with_a_control_character_or_a_space_is_refused_not_an_error(url: str) -> None:
    for allow_private in (False, True):
        assert url_fout(url, allow_private=allow_private) == "url_ongeldig"


def test_a_public_address_written_as_a_number_and_a_name_are_accepted() -> None:
    assert url_fout("http://134744072/", allow_private=False) is None  # 8.8.8.8
    assert url_fout("https://ontvanger.example./hook", allow_private=False) is None

"""E-mail addresses: one bare address, as intake accepts it and the mailer sends it."""

from __future__ import annotations

import pytest

from shared.platform.email_address import AdresOngeldig, adres_sleutel, email_address, veilig_adres

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("anna@example.nl", "anna@example.nl"),
        ("  a.b+c@sub.example.org ", "a.b+c@sub.example.org"),
        ("Anna@Example.NL", "Anna@example.nl"),  # the domain in lower case, the mailbox as given
        ("anna@bücher.de", "anna@xn--bcher-kva.de"),  # sent in the ASCII form, no SMTPUTF8
    ],
)
def test_an_accepted_address_comes_back_normalised(value: str, expected: str) -> None:
    assert email_address(value) == expected
    assert email_address(expected) == expected  # what intake stored, the mailer accepts as is


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("anna@example.nl\r\nBcc: iemand@example.org", "stuurteken"),
        ("anna@example.nl\n", "stuurteken"),
        ("an\x00na@example.nl", "stuurteken"),
        ("an\x7fna@example.nl", "stuurteken"),
        ("an\u200bna@example.nl", "stuurteken"),  # zero-width space: invisible
        ("an\u202ena@example.nl", "stuurteken"),  # right-to-left override
        ("=?utf-8?q?anna?=@example.nl", "encoded_word"),
        ("=?UTF-8?B?YW5uYQ==?=@example.nl", "encoded_word"),
        ("anna@example.nl, piet@example.nl", "meer_dan_een_adres"),
        ("anna@example.nl;piet@example.nl", "meer_dan_een_adres"),
        ("anna,piet@example.nl", "meer_dan_een_adres"),
        ("Anna de Vries <anna@example.nl>", "weergavenaam"),
        ("<anna@example.nl>", "weergavenaam"),
        ('"anna"@example.nl', "weergavenaam"),
        ("anna@example.nl (Anna)", "weergavenaam"),
        ("ontvangers: anna@example.nl", "weergavenaam"),
        ("anna", "ongeldig"),
        ("", "ongeldig"),
        ("anna@example", "ongeldig"),
        ("@example.nl", "ongeldig"),
        ("anna@@example.nl", "ongeldig"),
        ("an na@example.nl", "ongeldig"),
        ("anna@[127.0.0.1]", "ongeldig"),
        ("anna@localhost", "ongeldig"),
        ("anna@intranet.local", "ongeldig"),
        ("anna@example.test", "ongeldig"),
        ("änna@example.nl", "ongeldig"),  # would need SMTPUTF8
        ("a" * 250 + "@example.nl", "te_lang"),
    ],
)
def test_a_refused_address_names_the_rule_and_never_the_value(value: str, rule: str) -> None:
    with pytest.raises(AdresOngeldig) as caught:
        email_address(value)
    assert caught.value.rule == rule
    assert str(caught.value) == rule


def test_configured_addresses_may_be_local_but_must_be_safe() -> None:
    assert veilig_adres("secretariaat@weerbaarbestuur.local") == (
        "secretariaat@weerbaarbestuur.local"
    )
    for value, rule in (
        ("secretariaat@weerbaarbestuur.local\r\nBcc: x@example.org", "stuurteken"),
        ("=?utf-8?q?s?=@weerbaarbestuur.local", "encoded_word"),
        ("a@example.org, b@example.org", "meer_dan_een_adres"),
        ("Secretariaat <s@example.org>", "weergavenaam"),
        ("secretariaat", "ongeldig"),
        ("s ecretariaat@example.org", "ongeldig"),
    ):
        with pytest.raises(AdresOngeldig) as caught:
            veilig_adres(value)
        assert caught.value.rule == rule, value


def test_the_key_of_an_address_is_keyed_and_the_same_for_one_mailbox() -> None:
    key = adres_sleutel("anna@example.nl", KEY)
    assert "anna" not in key and len(key) == 64
    assert adres_sleutel("Anna@Example.NL", KEY) == key
    assert adres_sleutel("anna+aanvraag2@example.nl", KEY) == key
    assert adres_sleutel("piet@example.nl", KEY) != key
    assert adres_sleutel("anna@example.nl", b"x" * 32) != key

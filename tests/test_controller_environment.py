"""The controller level's ``FW_EVENT_SMTP_SERVER_*`` variables are read at every
use: a change is seen at the next read, a file one of them names is read again
(a mounted secret can be replaced), a malformed one is named every time. What
the same values say is worked out once."""

from __future__ import annotations

import pytest

from core import env as core_env

CERT_A = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
CERT_B = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"


@pytest.fixture(autouse=True)
def no_controller_variables(monkeypatch):
    for name in core_env.CONTROLLER_SMTP_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_a_changed_variable_is_seen_at_the_next_read(controller_smtp, monkeypatch):
    assert core_env.controller_smtp() is None
    controller_smtp(ADDR="mail-a.example", PORT="2525", USE_TLS="false")
    first = core_env.controller_smtp()
    assert (first.host, first.port, first.use_tls) == ("mail-a.example", 2525, False)
    # The same values: the same answer, worked out once.
    assert core_env.controller_smtp() is first
    controller_smtp(PORT="2526")
    assert core_env.controller_smtp().port == 2526
    controller_smtp(PORT="")  # empty counts as unset: the default port
    assert core_env.controller_smtp().port == 587
    monkeypatch.delenv("FW_EVENT_SMTP_SERVER_ADDR")
    assert core_env.controller_smtp() is None


def test_a_file_a_variable_names_is_read_at_every_use(controller_smtp, tmp_path):
    certificate = tmp_path / "client.pem"
    certificate.write_text(CERT_A, encoding="ascii")
    controller_smtp(ADDR="mail.example", CLIENT_CERT=str(certificate))
    assert core_env.controller_smtp().client_cert == CERT_A
    certificate.write_text(CERT_B, encoding="ascii")
    assert core_env.controller_smtp().client_cert == CERT_B
    # PEM text in the variable itself is nothing to read again.
    controller_smtp(CLIENT_CERT=CERT_A)
    assert core_env.controller_smtp() is core_env.controller_smtp()


def test_a_malformed_variable_is_named_at_every_read(controller_smtp):
    controller_smtp(ADDR="mail.example", PORT="smtp")
    for _ in range(2):
        with pytest.raises(ValueError, match="FW_EVENT_SMTP_SERVER_PORT"):
            core_env.controller_smtp()


def test_read_through_os_environ_where_it_has_no_store_of_its_own(
    controller_smtp, monkeypatch
):
    controller_smtp(
        ADDR="mail.example", PORT="465", USERNAME="alerts", PASSWORD="pässword"
    )
    from_store = core_env.controller_smtp()
    monkeypatch.setattr(core_env, "_STORE_KEYS", ())
    from_mapping = core_env.controller_smtp()
    assert from_mapping == from_store
    assert (from_mapping.username, from_mapping.password) == ("alerts", "pässword")

"""Python 3.11-3.13: the version range, and scripts/ensure-venv behind `make`.

The script runs for real against the interpreters pyenv keeps on this machine
(~/.pyenv/versions); a test skips when the interpreter it needs is not there.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
from cryptography import x509

from tests.support.smtp_servers import make_certificates, server_context

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ensure-venv"
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


def _pyenv_python(version: str) -> Path:
    found = sorted(PYENV.glob(f"{version}.*/bin/python{version}"))
    if not found:
        pytest.skip(f"Python {version} is not installed under {PYENV}")
    return found[-1]


def _version(python: Path) -> str:
    return subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()


def _ensure(venv: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "HOME": str(Path.home()),
        "PYENV_ROOT": str(PYENV.parent),
        # No pyenv shims: the script must find interpreters without them.
        "PATH": "/usr/bin:/bin",
        "VENV": str(venv),
        **env,
    }
    return subprocess.run(
        [SCRIPT, "--no-install"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def test_requires_python_admits_3_11_to_3_13():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.14"
    assert sys.version_info[:2] >= (3, 11)


def test_the_newest_supported_python_makes_a_new_venv(tmp_path):
    newest = _pyenv_python("3.13")
    # when
    result = _ensure(tmp_path / "venv")
    # then
    assert result.returncode == 0, result.stderr
    assert f"Creating {tmp_path / 'venv'} with Python 3.13" in result.stdout
    assert _version(tmp_path / "venv" / "bin" / "python") == _version(newest)


def test_a_venv_made_by_an_unsupported_python_is_rebuilt_with_a_message(tmp_path):
    # given a virtualenv made by Python 3.10
    old = _pyenv_python("3.10")
    venv = tmp_path / "venv"
    subprocess.run([old, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
    # when
    result = _ensure(venv, PYTHON=str(_pyenv_python("3.12")))
    # then
    assert result.returncode == 0, result.stderr
    assert (
        f"Rebuilding {venv} with Python 3.12 ({_pyenv_python('3.12')}): it was made "
        "by Python 3.10, and the Ops Console needs Python 3.11, 3.12 or 3.13."
    ) in result.stdout
    assert _version(venv / "bin" / "python") == "3.12"


def test_a_venv_whose_python_is_gone_is_rebuilt(tmp_path):
    # given a virtualenv whose interpreter link points nowhere
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(tmp_path / "removed-python")
    # when
    result = _ensure(venv, PYTHON=str(_pyenv_python("3.11")))
    # then
    assert result.returncode == 0, result.stderr
    assert "its Python no longer runs" in result.stdout
    assert _version(venv / "bin" / "python") == "3.11"


def test_a_supported_venv_is_kept(tmp_path):
    # given a virtualenv made by 3.11 while 3.13 is also installed
    venv = tmp_path / "venv"
    subprocess.run(
        [_pyenv_python("3.11"), "-m", "venv", "--without-pip", venv],
        check=True,
        timeout=60,
    )
    marker = venv / "kept"
    marker.write_text("")
    # when
    result = _ensure(venv)
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert marker.exists()


def test_an_unsupported_python_asked_for_is_refused_naming_the_variable(tmp_path):
    old = _pyenv_python("3.10")
    # when
    result = _ensure(tmp_path / "venv", PYTHON=str(old))
    # then
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"PYTHON={old} is Python 3.10; the Ops Console needs Python 3.11, 3.12 or 3.13."
    )
    assert not (tmp_path / "venv").exists()


def _strict_handshake(certificates, pair) -> None:
    """A TLS handshake over a loopback socket pair, verified as Python 3.13 does."""
    client_context = ssl.create_default_context(cafile=str(certificates.ca))
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT
    server = server_context(pair)
    left, right = socket.socketpair()
    left.settimeout(10)
    right.settimeout(10)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server.wrap_socket(right, server_side=True):
                pass
        except (ssl.SSLError, OSError) as error:
            errors.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(left, server_hostname="localhost"):
            pass
    finally:
        thread.join(10)
        left.close()
        right.close()


def test_test_certificates_pass_strict_verification_on_every_python(tmp_path):
    # given the certificates the TLS tests use
    certificates = make_certificates(tmp_path)
    # then the CA and the server certificate carry the key identifiers
    ca = x509.load_pem_x509_certificate(certificates.ca.read_bytes())
    leaf = x509.load_pem_x509_certificate(certificates.server.cert.read_bytes())
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    leaf_aki = leaf.extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier
    ).value
    assert leaf_aki.key_identifier == ca_ski.digest
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).critical
    # and a strict client accepts the server certificate (3.13's default check)
    _strict_handshake(certificates, certificates.server)


def test_strict_verification_still_refuses_the_wrong_host(tmp_path):
    certificates = make_certificates(tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _strict_handshake(certificates, certificates.wrong_host)

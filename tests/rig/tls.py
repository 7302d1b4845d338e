"""A throwaway certificate authority and token-signing keys, made with ``cryptography``.

Registries and the token server speak real TLS so Python clients exercise certificate
verification (``verify=ca.ca_file``) exactly as they would against a private registry.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=2)
_BACKDATE = dt.timedelta(hours=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60] or "cert"


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The docker/libtrust key id distribution uses to match a JWT ``kid`` to a trusted key.

    SHA-256 of the DER SubjectPublicKeyInfo, first 30 bytes (240 bits), base32 without padding,
    in groups of 4 characters joined by ':'.
    """
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


class CertificateAuthority:
    """A self-signed CA under ``workdir`` that issues server certificates with DNS/IP SANs."""

    def __init__(self, workdir: Path, common_name: str = "flyte-private-registry test CA") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = self.workdir / "ca.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate in PEM, e.g. to append to a bundle or put in a config."""
        return self.ca_file.read_bytes()

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only this CA (httpx 0.28 deprecates ``verify=<path>``)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def issue(self, hostnames: list[str], ips: list[str]) -> tuple[Path, Path]:
        """Issue a server certificate for ``hostnames`` and ``ips``; return (cert_path, key_path).

        The cert file holds leaf + CA so clients that only know the CA can build the chain.
        """
        if not hostnames and not ips:
            raise ValueError("a server certificate needs at least one hostname or IP")
        key = ec.generate_private_key(ec.SECP256R1())
        common_name = (hostnames or ips)[0]
        sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        stem = _safe_name(common_name) + "-" + format(cert.serial_number, "x")[:8]
        cert_path = self.workdir / f"{stem}.crt"
        key_path = self.workdir / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.ca_pem)
        _write_key(key_path, key)
        return cert_path, key_path


@dataclass(frozen=True)
class SigningKey:
    """An ES256 key pair plus its self-signed certificate, used by the token server to sign JWTs.

    ``cert_path`` is what the registry's ``auth.token.rootcertbundle`` must contain.
    """

    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    cert_path: Path
    key_path: Path

    @property
    def kid(self) -> str:
        """libtrust key id of the public key (the JWT ``kid`` header distribution looks up)."""
        return libtrust_key_id(self.private_key.public_key())

    @property
    def x5c(self) -> list[str]:
        """The JWT ``x5c`` header value: base64 (not URL-safe) DER of the signing certificate."""
        return [base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()]


def make_signing_key(workdir: Path, common_name: str = "rig-token-signer") -> SigningKey:
    """Create a P-256 key and a self-signed cert for it under ``workdir``.

    Self-signed on purpose: distribution trusts exactly the certs in ``rootcertbundle``, and
    an x5c chain of one cert that is itself in that bundle verifies.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    stem = _safe_name(common_name)
    cert_path = workdir / f"{stem}.crt"
    key_path = workdir / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return SigningKey(private_key=key, certificate=cert, cert_path=cert_path, key_path=key_path)

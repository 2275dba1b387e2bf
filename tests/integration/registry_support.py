"""A real OCI registry on loopback for the supply-chain tests, and crane to fill it.

The registry is distribution's ``registry`` (built by ``make supplychain`` into
.cache/supplychain/bin) serving TLS with a throwaway certificate for IP 127.0.0.1 and htpasswd
basic auth. The htpasswd hash is bcrypt at cost 4: the registry checks the password on every
request, and at cost 10 that alone costs ~59 ms a request.

The CLIs run with a HOME, DOCKER_CONFIG and XDG_CONFIG_HOME of their own (nothing read from or
written to the developer's), and SSL_CERT_FILE set to the registry's certificate, so they trust
it without an --insecure flag.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import tarfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import wait_for

REPOSITORY = Path(__file__).resolve().parents[2]
SUPPLYCHAIN_BIN = Path(
    os.environ.get("MAMORI_SUPPLYCHAIN_BIN", REPOSITORY / ".cache" / "supplychain" / "bin")
)
REGISTRY = SUPPLYCHAIN_BIN / "registry"
CRANE = SUPPLYCHAIN_BIN / "crane"
COSIGN = SUPPLYCHAIN_BIN / "cosign"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0
BCRYPT_COST = 4


class RegistrySupportError(RuntimeError):
    """The test registry or a CLI did not do what a test needed."""


def bcrypt_htpasswd_line(username: str, password: str, *, cost: int = BCRYPT_COST) -> str:
    """``user:$2b$<cost>$…``, hashed by the C library's bcrypt (libxcrypt) through ``crypt``.

    ``crypt`` is deprecated (gone in Python 3.13); the replacement is the ``bcrypt`` package.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2**cost))
    if not hashed or not hashed.startswith(f"$2b${cost:02d}$"):
        raise RegistrySupportError(f"this C library made no bcrypt hash: {hashed!r}")
    return f"{username}:{hashed}"


def write_loopback_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for IP 127.0.0.1 (SAN), valid for a day: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mamori test registry")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class TestRegistry:
    """A running registry: where it listens, who may use it, how the CLIs reach it."""

    __test__ = False  # not a pytest test class

    port: int
    username: str
    password: str
    ca_file: Path
    cli_env: dict[str, str]
    work: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this registry's certificate only."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def crane(self, *args: str) -> str:
        """Run crane with the isolated environment; its stdout, stripped."""
        done = subprocess.run(
            [str(CRANE), *args],
            env=self.cli_env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RegistrySupportError(f"crane {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def push_image(self, repository: str, tag: str, content: str) -> str:
        """Push a one-layer image holding ``content`` as /content.txt; return its digest."""
        layer = self.work / f"layer-{len(list(self.work.glob('layer-*')))}.tar"
        payload = self.work / "content.txt"
        payload.write_text(content)
        with tarfile.open(layer, "w") as archive:
            archive.add(payload, arcname="content.txt")
        reference = f"{self.address}/{repository}:{tag}"
        self.crane("append", "--oci-empty-base", "-f", str(layer), "-t", reference)
        return self.digest(repository, tag)

    def digest(self, repository: str, tag: str) -> str:
        """What crane says the tag points to."""
        return self.crane("digest", f"{self.address}/{repository}:{tag}")

    def move_tag(self, repository: str, tag: str, digest: str) -> None:
        """Point ``tag`` at the manifest ``digest`` (already in ``repository``)."""
        self.crane("tag", f"{self.address}/{repository}@{digest}", tag)

    def cosign(self, *args: str, cwd: Path, password: str = "") -> str:
        """Run the cosign CLI in ``cwd`` with the isolated environment; its stdout."""
        env = {**self.cli_env, "COSIGN_PASSWORD": password}
        done = subprocess.run(
            [str(COSIGN), *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RegistrySupportError(f"cosign {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def cosign_key_pair(self, directory: Path, password: str) -> Path:
        """``cosign generate-key-pair`` in ``directory``; the public key's path."""
        directory.mkdir(parents=True, exist_ok=True)
        self.cosign("generate-key-pair", cwd=directory, password=password)
        return directory / "cosign.pub"


def _isolated_cli_env(home: Path, ca_file: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        HOME=str(home),
        DOCKER_CONFIG=str(home / ".docker"),
        XDG_CONFIG_HOME=str(home / ".config"),
        SSL_CERT_FILE=str(ca_file),
    )
    return env


def _write_config(work: Path, port: int, cert: Path, key: Path, htpasswd: Path) -> Path:
    # JSON is YAML: the registry reads this file as its configuration.
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(work / "data")}},
        "http": {
            "addr": f"127.0.0.1:{port}",
            "tls": {"certificate": str(cert), "key": str(key)},
        },
        "auth": {"htpasswd": {"realm": "mamori-test", "path": str(htpasswd)}},
    }
    path = work / "config.yml"
    path.write_text(json.dumps(config, indent=2))
    return path


def _answers_with_a_challenge(port: int, context: ssl.SSLContext) -> bool:
    """True once GET /v2/ over TLS is answered 401 (up, and asking for credentials)."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
    try:
        connection.request("GET", "/v2/")
        return connection.getresponse().status == 401
    finally:
        connection.close()


@contextmanager
def running_registry(work: Path) -> Iterator[TestRegistry]:
    """Start the registry in ``work`` and stop it when the block ends, even on failure."""
    for binary in (REGISTRY, CRANE):
        if not os.access(binary, os.X_OK):
            raise RegistrySupportError(f"{binary} is missing: run `make supplychain`")
    username, password = "mamori", base64.urlsafe_b64encode(os.urandom(12)).decode()
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    (home / ".docker").mkdir(parents=True, exist_ok=True)
    cert, key = write_loopback_certificate(work)
    htpasswd = work / "htpasswd"
    htpasswd.write_text(bcrypt_htpasswd_line(username, password) + "\n")
    port = free_loopback_port()
    config = _write_config(work, port, cert, key, htpasswd)
    cli_env = _isolated_cli_env(home, cert)
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    docker_config = {"auths": {f"127.0.0.1:{port}": {"auth": auth}}}
    (home / ".docker" / "config.json").write_text(json.dumps(docker_config))
    log = (work / "registry.log").open("wb")
    process = subprocess.Popen(
        [str(REGISTRY), "serve", str(config)],
        env=cli_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    registry = TestRegistry(port, username, password, cert, cli_env, work)
    try:
        context = registry.ssl_context()

        def up() -> bool:
            if process.poll() is not None:
                tail = (work / "registry.log").read_text(errors="replace")[-2000:]
                raise RegistrySupportError(f"registry exited {process.returncode}: {tail}")
            return _answers_with_a_challenge(port, context)

        wait_for(up, timeout=START_TIMEOUT, interval=0.05, ignore=(OSError,), message="registry")
        yield registry
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
        log.close()

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.helpers import wait_for

REPOSITORY = Path(__file__).resolve().parents[2]
SUPPLYCHAIN_BIN = Path(
    os.environ.get("MAMORI_SUPPLYCHAIN_BIN", REPOSITORY / ".cache" / "supplychain" / "bin")
)
REGISTRY = SUPPLYCHAIN_BIN / "registry"
CRANE = SUPPLYCHAIN_BIN / "crane"
COSIGN = SUPPLYCHAIN_BIN / "cosign"
NOTATION = SUPPLYCHAIN_BIN / "notation"
ORAS = SUPPLYCHAIN_BIN / "oras"
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

    def oras(self, *args: str, cwd: Path) -> str:
        """Run oras in ``cwd`` with the isolated environment; its stdout, stripped."""
        return _run(ORAS, args, env=self.cli_env, cwd=cwd)

    def notation(self, *args: str, config_home: Path) -> str:
        """Run notation with its configuration (keys, trust store, trust policy) under
        ``config_home`` (its XDG_CONFIG_HOME), never the developer's; its stdout, stripped."""
        env = {**self.cli_env, "XDG_CONFIG_HOME": str(config_home)}
        return _run(NOTATION, args, env=env, cwd=config_home)

    def notation_test_signer(self, config_home: Path, name: str) -> NotationSigner:
        """``notation cert generate-test``: an RSA key and a self-signed certificate valid for
        24 hours (sign fresh in each test session), in its own configuration."""
        config_home.mkdir(parents=True, exist_ok=True)
        self.notation("cert", "generate-test", name, config_home=config_home)
        local = config_home / "notation" / "localkeys"
        return NotationSigner(config_home, name, local / f"{name}.crt")

    def notation_signer_from_files(
        self, config_home: Path, name: str, key_file: Path, chain_file: Path
    ) -> NotationSigner:
        """A notation configuration whose one signing key is ``key_file`` with the PEM chain
        ``chain_file`` (leaf first), as ``signingkeys.json`` lists a local key."""
        directory = config_home / "notation"
        directory.mkdir(parents=True, exist_ok=True)
        entry = {"name": name, "keyPath": str(key_file), "certPath": str(chain_file)}
        keys = {"default": name, "keys": [entry]}
        (directory / "signingkeys.json").write_text(json.dumps(keys, indent=1))
        return NotationSigner(config_home, name, chain_file)

    def notation_sign(
        self,
        signer: NotationSigner,
        image: str,
        *,
        signature_format: str = "jws",
        expiry: str = "",
        referrers_api: bool = False,
    ) -> None:
        """Sign ``image`` (repository@digest); ``referrers_api`` asks notation to store it
        through the referrers API where the registry has one (default: the tag schema)."""
        args = ["sign", "--key", signer.key_name, "--signature-format", signature_format]
        if expiry:
            args += ["--expiry", expiry]
        args += [f"--force-referrers-tag={str(not referrers_api).lower()}", image]
        self.notation(*args, config_home=signer.config_home)

    def notation_verify(
        self,
        image: str,
        *,
        config_home: Path,
        trusted: Sequence[Path],
        identities: Sequence[str] = ("*",),
    ) -> bool:
        """Whether ``notation verify`` (strict) accepts ``image`` when its trust store holds
        ``trusted`` and its trust policy lists ``identities``: the reference verdict. A failure
        that is not a verdict on the signatures raises RegistrySupportError."""
        store = config_home / "notation" / "truststore" / "x509" / "ca" / "mamori"
        store.mkdir(parents=True, exist_ok=True)
        for index, certificate in enumerate(trusted):
            (store / f"trusted-{index}.crt").write_bytes(certificate.read_bytes())
        policy = {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "mamori-test",
                    "registryScopes": ["*"],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": ["ca:mamori"],
                    "trustedIdentities": list(identities),
                }
            ],
        }
        policy_file = config_home / "trustpolicy-to-import.json"
        policy_file.write_text(json.dumps(policy))
        # the CLI puts the policy where this version of it reads it
        self.notation("policy", "import", "--force", str(policy_file), config_home=config_home)
        try:
            self.notation("verify", image, config_home=config_home)
        except RegistrySupportError as error:
            if "signature verification failed" not in str(error):
                raise  # not a verdict: a test set notation up wrong
            return False
        return True


@dataclass(frozen=True)
class NotationSigner:
    """A notation configuration (its own XDG_CONFIG_HOME) holding one signing key."""

    config_home: Path
    key_name: str
    certificates: Path  # PEM, leaf first: the self-signed test certificate, or leaf … root


def write_code_signing_chain(
    directory: Path, *, subject: str, valid_for: datetime.timedelta
) -> tuple[Path, Path, Path]:
    """A P-256 root and a code-signing leaf under it, as Notation wants them (key usage
    critical, codeSigning, no SAN): (leaf key, chain leaf→root, root certificate)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    root_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mamori tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    def usage(*, signer: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=signer,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=not signer,
            crl_sign=not signer,
            encipher_only=False,
            decipher_only=False,
        )

    def builder(
        subject_name: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject_name)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + valid_for)
        )

    root_name = name(f"{subject} root")
    root = (
        builder(root_name, root_name, root_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(usage(signer=False), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        builder(name(subject), root_name, leaf_key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(signer=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_file, chain_file, root_file = (
        directory / "leaf.key",
        directory / "chain.crt",
        directory / "root.crt",
    )
    key_file.write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    chain_file.write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
    root_file.write_bytes(root.public_bytes(pem))
    return key_file, chain_file, root_file


def _run(binary: Path, args: Sequence[str], *, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(binary), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RegistrySupportError(
            f"{binary.name} {' '.join(args)}: {(done.stderr or done.stdout).strip()}"
        )
    return done.stdout.strip()


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

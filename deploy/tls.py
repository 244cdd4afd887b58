"""TLS for a dynadask cluster reachable over a network: certificates, ``Security``, commands.

A scheduler listening on a network address accepts any client that can reach it, and Dask's
messages are pickles: anyone who connects can run code on the workers. Over a network that
others share, run the cluster with TLS and mutual authentication: every process (scheduler,
workers, the driver running ``dynadask run``) holds a certificate signed by a private
certificate authority (CA) and accepts only peers with one.

This script makes such a CA and one certificate for the cluster with the ``openssl`` command
(for production, use certificates from your site's CA), and shows the three ways to use them:

- the processes' command lines (:func:`scheduler_args`, :func:`worker_args`);
- ``distributed.security.Security`` in Python (:func:`security`), e.g.
  ``Client("tls://HEAD:8786", security=security(files))``;
- Dask's configuration through environment variables (:func:`client_env`), which is how
  ``dynadask run --scheduler tls://HEAD:8786`` (or ``DYNADASK_SCHEDULER``) picks them up.

When the ``cryptography`` package is installed, ``Security.temporary()`` makes a throw-away CA
in memory instead; it serves an in-process ``LocalCluster(security=Security.temporary())``
(separate processes need the files).

Usage::

    python deploy/tls.py certs/ --host head.example.org --host 10.0.0.5

prints the scheduler, worker and driver commands for those files. ``tests/test_deploy_tls.py``
starts a TLS scheduler and worker on loopback with them and runs a stage through them.
"""

from __future__ import annotations

import argparse
import ipaddress
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TLSFiles:
    """The CA's certificate and the cluster's certificate and private key (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(
    folder: str | Path, hosts: Sequence[str] = ("127.0.0.1", "localhost"), days: int = 365
) -> TLSFiles:
    """Make a private CA and one certificate it signs for ``hosts`` (names or IP addresses).

    Parameters
    ----------
    folder
        Where the PEM files go (made if missing). Keep ``ca-key.pem`` away from the cluster.
    hosts
        The names and addresses the scheduler and workers are reached at (the certificate's
        subject alternative names).
    days
        Validity of both certificates.

    Returns
    -------
    TLSFiles
        ``ca.pem``, ``cluster.pem`` and ``cluster-key.pem`` in ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca-key.pem"
    cert, key, csr = folder / "cluster.pem", folder / "cluster-key.pem", folder / "cluster.csr"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
             str(ca), "-days", str(days), "-subj", "/CN=dynadask cluster CA")  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", "/CN=dynadask cluster")  # fmt: skip
    names = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
            names.append(f"IP:{host}")
        except ValueError:
            names.append(f"DNS:{host}")
    ext = folder / "cluster.ext"
    ext.write_text(
        f"subjectAltName={','.join(names)}\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
    )
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", str(days),
             "-extfile", str(ext))  # fmt: skip
    for private in (key, ca_key):
        private.chmod(0o600)
    csr.unlink()
    return TLSFiles(ca, cert, key)


def security(files: TLSFiles):  # -> distributed.Security
    """A ``distributed.security.Security`` that trusts only the CA's certificates.

    For a client (or an in-process cluster); unencrypted connections are refused.
    """
    from distributed.security import Security

    c, k = str(files.cert), str(files.key)
    return Security(
        tls_ca_file=str(files.ca),
        tls_client_cert=c,
        tls_client_key=k,
        tls_scheduler_cert=c,
        tls_scheduler_key=k,
        tls_worker_cert=c,
        tls_worker_key=k,
        require_encryption=True,
    )


def _tls_args(files: TLSFiles) -> list[str]:
    return ["--tls-ca-file", str(files.ca), "--tls-cert", str(files.cert),
            "--tls-key", str(files.key)]  # fmt: skip


def scheduler_args(files: TLSFiles, host: str = "0.0.0.0", port: int = 8786) -> list[str]:
    """``dask scheduler`` arguments: listen on ``tls://host:port`` with the files.

    The dashboard stays on plain HTTP: bind it to ``127.0.0.1`` and reach it through an ssh
    tunnel (``--dashboard-address 127.0.0.1:8787``).
    """
    return ["scheduler", "--protocol", "tls", "--host", host, "--port", str(port),
            "--dashboard-address", "127.0.0.1:8787", *_tls_args(files)]  # fmt: skip


def worker_args(files: TLSFiles, address: str) -> list[str]:
    """``dask worker`` arguments to join the TLS scheduler at ``address`` (``tls://...``)."""
    return ["worker", address, "--nthreads", "1", *_tls_args(files)]


def client_env(files: TLSFiles) -> dict[str, str]:
    """Environment variables that give every Dask client of a process the TLS settings.

    ``dynadask run --scheduler tls://...`` reads them through Dask's configuration.
    """
    return {
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(files.ca),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(files.cert),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(files.key),
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Make the files in a folder and print the commands that use them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--host", action="append", default=None, help="repeatable")
    args = parser.parse_args(argv)
    hosts = args.host or ["127.0.0.1", "localhost"]
    files = make_certificates(args.folder, hosts)
    address = f"tls://{hosts[0]}:8786"
    print("# on the head node\ndask", " ".join(scheduler_args(files)))
    print("# on each worker node\ndask", " ".join(worker_args(files, address)))
    env = " ".join(f"{k}={v}" for k, v in client_env(files).items())
    print(f"# the driver\n{env} dynadask run data.h5ad --out results/ --scheduler {address}")
    print(f"# keep {files.ca.with_name('ca-key.pem')} off the cluster", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Throughput of POST /v1/pki/sign/{role} through `scaivault-pki serve`, every certificate stored.

The target is cfssl on the same 2-core machine: ~6,500 certificates/s with an EC CA, ~1,650/s with RSA.
Usage: scripts/bench_sign.py [--seconds 10] [--clients 8] [--workers 2] [--ca ec|rsa]
Starts its own daemon on a fresh data dir (SoftHSM + SQLite unless --database-url is given).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.daemon import init_data_dir, start_daemon  # noqa: E402


def csr_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.example.com")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bench.example.com")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def report(args: argparse.Namespace, total: int, elapsed: float) -> None:
    print(f"{args.ca} CA, {args.workers} workers, {args.clients} {args.client} clients: {total} certificates in "
          f"{elapsed:.1f} s = {total / elapsed:.0f}/s (cfssl reference: {'6500' if args.ca == 'ec' else '1650'}/s)")


def run_wrk(url: str, token: str, body: dict, args: argparse.Namespace, work: Path) -> tuple[int, float]:
    """Drive the endpoint with wrk; every non-201 answer fails the run."""
    script = work / "sign.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        "failed = 0\n"
        "response = function(status, headers, body) if status ~= 201 then failed = failed + 1 end end\n"
        'done = function(summary, latency, requests) io.write(string.format("non201 %d\\n", summary.errors.status)) end\n'
    )
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(args.clients), "-d", f"{args.seconds:.0f}s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    elapsed = float(re.search(r"requests in ([\d.]+)s", out).group(1))
    bad = int(re.search(r"non201 (\d+)", out).group(1))
    if bad or "Socket errors" in out:
        raise SystemExit(f"wrk saw failures:\n{out}")
    return total, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ca", choices=["ec", "rsa"], default="ec")
    parser.add_argument("--database-url")
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python",
                        help="wrk (Debian package) loads the server far less than Python threads on the same cores")
    args = parser.parse_args()
    overrides = {"database_url": args.database_url} if args.database_url else {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        token = init_data_dir(data_dir, **overrides)
        daemon = start_daemon(data_dir, workers=args.workers, log_level="warning", **overrides)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            key = {"ec": {"key_type": "ec", "key_size": 256}, "rsa": {"key_type": "rsa", "key_size": 2048}}[args.ca]
            ca = requests.post(daemon.url + "/v1/pki/ca", headers=headers, json={
                "name": "bench", "common_name": "Bench CA", "ca_type": "root", **key}).json()
            requests.post(daemon.url + "/v1/pki/roles", headers=headers, json={
                "name": "bench", "ca_id": ca["id"], "allowed_domains": ["example.com"], "allow_subdomains": True,
                "key_type": "any"}).raise_for_status()
            body = {"csr_pem": csr_pem(), "ttl": "1h"}
            if args.client == "wrk":
                total, elapsed = run_wrk(daemon.url + "/v1/pki/sign/bench", token, body, args, data_dir)
                report(args, total, elapsed)
                return
            deadline = time.monotonic() + args.seconds
            counts = []
            lock = threading.Lock()

            def client() -> None:
                done = 0
                with requests.Session() as session:
                    while time.monotonic() < deadline:
                        resp = session.post(daemon.url + "/v1/pki/sign/bench", headers=headers, json=body)
                        if resp.status_code != 201:
                            raise SystemExit(f"sign failed: {resp.status_code} {resp.text}")
                        done += 1
                with lock:
                    counts.append(done)

            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                for future in [pool.submit(client) for _ in range(args.clients)]:
                    future.result()
            report(args, sum(counts), time.monotonic() - started)
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()

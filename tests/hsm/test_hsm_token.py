"""Token lifecycle: errors, PINs, sharing, fork detection and thread safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from scaivault_pki.hsm import (
    GeneratedKey,
    HsmError,
    HsmModuleError,
    HsmPinIncorrect,
    HsmPinUnavailable,
    HsmTokenNotFound,
    HsmUnavailable,
    Signer,
    Token,
)

if TYPE_CHECKING:
    from conftest import SoftHsmSetup


def run_fresh_python(softhsm: SoftHsmSetup, code: str, **params: Any) -> Any:
    """Run ``code`` in a new interpreter (no PKCS#11 state) and return its last JSON line."""
    env = dict(os.environ)
    env.pop("SOFTHSM2_CONF", None)  # the Token under test must set it
    env["SCAIVAULT_TEST_PARAMS"] = json.dumps(
        {
            "module": softhsm.module,
            "conf": str(softhsm.conf),
            "label": softhsm.label,
            "pin_file": str(softhsm.pin_file),
            **params,
        }
    )
    prelude = "import json, os\nP = json.loads(os.environ['SCAIVAULT_TEST_PARAMS'])\n"
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_open_is_idempotent_and_ping_works(token: Token) -> None:
    token.open()
    token.open()
    token.ping()


def test_init_loads_nothing(softhsm: SoftHsmSetup) -> None:
    # Nonsense everywhere: construction must not touch any of it.
    Token("/nonexistent/lib.so", "no-such-label", "/nonexistent/pin", softhsm_conf="/nonexistent.conf")


def test_missing_module(softhsm: SoftHsmSetup) -> None:
    tok = Token("/nonexistent/libpkcs11-nothing.so", softhsm.label, str(softhsm.pin_file))
    with pytest.raises(HsmModuleError, match="does not exist"):
        tok.open()
    with pytest.raises(HsmModuleError):
        tok.ping()


def test_module_that_is_not_a_library(softhsm: SoftHsmSetup, tmp_path: Path) -> None:
    fake = tmp_path / "libfake-pkcs11.so"
    fake.write_bytes(b"this is not an ELF file")
    with pytest.raises(HsmModuleError, match="cannot load"):
        Token(str(fake), softhsm.label, str(softhsm.pin_file)).ping()


def test_wrong_label(softhsm: SoftHsmSetup, token: Token) -> None:
    with pytest.raises(HsmTokenNotFound, match="no token labelled 'no-such-token'"):
        softhsm.token(label="no-such-token").ping()
    token.ping()


def test_missing_pin_file_then_fixed(softhsm: SoftHsmSetup, token: Token, tmp_path: Path) -> None:
    pin_file = tmp_path / "later.pin"
    tok = softhsm.token(pin_file=pin_file)
    with pytest.raises(HsmPinUnavailable, match="does not exist"):
        tok.ping()
    # The operator fixes the file: the next call succeeds, nothing was cached.
    pin_file.write_text(softhsm.pin + "\n")
    tok.ping()
    tok.close()
    token.ping()


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_pin_file(softhsm: SoftHsmSetup, tmp_path: Path, content: str) -> None:
    pin_file = tmp_path / "empty.pin"
    pin_file.write_text(content)
    with pytest.raises(HsmPinUnavailable, match="is empty"):
        softhsm.token(pin_file=pin_file).ping()


def test_unreadable_pin_file(softhsm: SoftHsmSetup, tmp_path: Path) -> None:
    with pytest.raises(HsmPinUnavailable, match="cannot read PIN file"):
        softhsm.token(pin_file=tmp_path).ping()  # a directory


def test_wrong_pin_same_process(
    softhsm: SoftHsmSetup, token: Token, keys: dict[str, GeneratedKey], tmp_path: Path
) -> None:
    """A second Token with a wrong PIN is refused and does not disturb the good one.

    The token cannot check it (the process is already logged in, a second
    C_Login only says "already logged in"), so the Token compares with the
    PIN that logged in.
    """
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("definitely-not-the-pin\n")
    bad = softhsm.token(pin_file=wrong)
    with pytest.raises(HsmPinIncorrect) as caught:
        bad.ping()
    assert "definitely-not-the-pin" not in caught.value.message
    assert softhsm.pin not in caught.value.message
    with pytest.raises(HsmPinIncorrect):
        bad.signer(keys["ec256"].key_id, "sha256_ecdsa")
    bad.close()

    token.ping()
    signature = token.signer(keys["ec256"].key_id, "sha256_ecdsa").sign(b"after bad pin")
    public_key = load_der_public_key(keys["ec256"].public_key_info.dump())
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, b"after bad pin", ec.ECDSA(hashes.SHA256()))


def test_second_token_object_shares_the_session(
    softhsm: SoftHsmSetup, token: Token, keys: dict[str, GeneratedKey]
) -> None:
    other = softhsm.token()
    other.ping()
    other.signer(keys["ec256"].key_id, "sha256_ecdsa").sign(b"other")
    # Closing it must not log out the process (C_Logout is application-wide).
    other.close()
    token.ping()
    token.signer(keys["ec256"].key_id, "sha256_ecdsa").sign(b"still logged in")


def test_wrong_pin_rejected_by_token_then_fixed(softhsm: SoftHsmSetup, tmp_path: Path) -> None:
    """In a fresh process the token itself rejects the PIN; fixing the file recovers."""
    pin_file = tmp_path / "user.pin"
    pin_file.write_text("wrong-pin-1234\n")
    outcome = run_fresh_python(
        softhsm,
        """
        from scaivault_pki.hsm import HsmPinIncorrect, Token
        t = Token(P["module"], P["label"], P["bad_pin_file"], softhsm_conf=P["conf"])
        messages = []
        for _ in range(2):
            try:
                t.ping()
                messages.append(None)
            except HsmPinIncorrect as exc:
                messages.append(exc.message)
        with open(P["bad_pin_file"], "w") as f:
            f.write(open(P["pin_file"]).read())
        t.ping()
        t.close()
        t.open()  # close/reopen in a process of its own
        t.ping()
        print(json.dumps({"messages": messages}))
        """,
        bad_pin_file=str(pin_file),
    )
    first, second = outcome["messages"]
    assert "rejected the PIN" in first and "wrong PIN" in first
    assert "not sent again" in second  # no second C_Login with the same wrong PIN
    for message in (first, second):
        assert "wrong-pin-1234" not in message and softhsm.pin not in message


def test_lost_session_is_reopened(softhsm: SoftHsmSetup, keys: dict[str, GeneratedKey]) -> None:
    """After the session dies (HSM restart, ...) one call fails, the next reconnects."""
    outcome = run_fresh_python(
        softhsm,
        """
        from scaivault_pki.hsm import HsmUnavailable, Token
        t = Token(P["module"], P["label"], P["pin_file"], softhsm_conf=P["conf"])
        signer = t.signer(P["key_id"], "sha256_ecdsa")
        signer.sign(b"before")
        t._login.session.close()  # simulate the device dropping our session
        try:
            signer.sign(b"lost")
            first = None
        except HsmUnavailable as exc:
            first = exc.message
        t.ping()
        signer.sign(b"after")  # stale key handle was discarded with the session
        print(json.dumps({"first": first}))
        """,
        key_id=keys["ec256"].key_id,
    )
    assert outcome["first"] is not None and "reopened on the next request" in outcome["first"]


def test_use_after_fork_is_refused(softhsm: SoftHsmSetup, token: Token, keys: dict[str, GeneratedKey]) -> None:
    token.ping()
    pid = os.fork()
    if pid == 0:  # child: must leave through os._exit whatever happens
        code = 10
        try:
            try:
                token.ping()
                code = 1
            except HsmUnavailable as exc:
                code = 0 if "before fork" in exc.message else 2
            if code == 0:
                # A Token never opened is refused too: the library itself was
                # initialised in the parent.
                try:
                    softhsm.token().ping()
                    code = 3
                except HsmUnavailable as exc:
                    code = 0 if "before fork" in exc.message else 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent is unaffected.
    token.ping()
    token.signer(keys["ec384"].key_id, "sha384_ecdsa").sign(b"parent")


def test_lazy_open_in_forked_workers(softhsm: SoftHsmSetup, keys: dict[str, GeneratedKey]) -> None:
    """The gunicorn pattern: Token built in the master, opened in each worker after fork."""
    outcome = run_fresh_python(
        softhsm,
        """
        from scaivault_pki.hsm import Token
        t = Token(P["module"], P["label"], P["pin_file"], softhsm_conf=P["conf"])
        workers = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    t.signer(P["key_id"], "sha256_ecdsa").sign(b"worker")
                    code = 0
                finally:
                    os._exit(code)
            workers.append(pid)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in workers]
        import pkcs11
        print(json.dumps({"codes": codes, "master_loaded": sorted(pkcs11._loaded)}))
        """,
        key_id=keys["ec256"].key_id,
    )
    assert outcome == {"codes": [0, 0], "master_loaded": []}


def test_concurrent_signing(token: Token, keys: dict[str, GeneratedKey]) -> None:
    signers: list[Signer] = [
        token.signer(keys["ec256"].key_id, "sha256_ecdsa"),
        token.signer(keys["ec384"].key_id, "sha384_ecdsa"),
        token.signer(keys["rsa2048"].key_id, "sha256_rsa"),
    ]
    results: list[tuple[Signer, bytes, bytes]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(worker: int) -> None:
        try:
            start.wait()
            for n in range(30):
                signer = signers[(worker + n) % len(signers)]
                data = f"worker {worker} item {n}".encode()
                results.append((signer, data, signer.sign(data)))
                if n % 10 == 0:
                    token.ping()
                    token.key_attributes(signer.key_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(results) == 4 * 30
    for signer, data, signature in results:
        public_key = load_der_public_key(signer.public_key_info.dump())
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            digest = hashes.SHA256() if signer.algorithm == "sha256_ecdsa" else hashes.SHA384()
            public_key.verify(signature, data, ec.ECDSA(digest))
        else:
            assert isinstance(public_key, rsa.RSAPublicKey)
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def test_signing_waits_for_the_token_lock(token: Token, keys: dict[str, GeneratedKey]) -> None:
    """Signer.sign goes through the Token's lock (the library is not thread-safe)."""
    signer = token.signer(keys["ec256"].key_id, "sha256_ecdsa")
    done = threading.Event()

    def sign() -> None:
        signer.sign(b"waits")
        done.set()

    thread = threading.Thread(target=sign)
    with token.lock:
        thread.start()
        assert not done.wait(0.5)
    assert done.wait(60)
    thread.join()


def test_errors_are_typed_with_messages() -> None:
    for cls in (HsmModuleError, HsmTokenNotFound, HsmPinIncorrect, HsmPinUnavailable, HsmUnavailable):
        error = cls("something clear")
        assert isinstance(error, HsmError)
        assert error.message == str(error) == "something clear"

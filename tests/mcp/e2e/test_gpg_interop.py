"""Interoperability with GnuPG, an OpenPGP implementation no one here wrote.

gpg runs in batch mode in its own GNUPGHOME, with `--pinentry-mode loopback`
for passphrases and `--trust-model always` (the keys it imports are not
certified, and need not be: the mailbox directory is what vouches for them).
Its keys are made with `--rfc4880`, so that GnuPG 2.3 and later do not
advertise the LibrePGP AEAD (OCB) and v5 features that pgpy 0.6 cannot read;
GnuPG 2.2, Debian 12's, needs no flag, and the encrypt tests run both ways.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailbox_mcp.e2e import openpgp
from mailbox_mcp.e2e.openpgp import PassphraseError, PrivateKey, PublicKey

GPG = shutil.which("gpg")
# CI installs gpg (.ci/run) and must not skip this quietly; locally a missing gpg skips.
if GPG is None and os.environ.get("CI"):
    raise RuntimeError("GnuPG (`gpg`) is required in CI: apt-get install -y gnupg")
pytestmark = pytest.mark.skipif(
    GPG is None, reason="GnuPG (`gpg`) is not installed: apt-get install -y gnupg"
)

PASSPHRASE = "gpg-made passphrase"
TEXT = "Quarterly numbers attached — ünïcödé ✓\nsecond line\n" * 40


@dataclass
class GpgKey:
    name: str
    fingerprint: str
    public_armored: str


class Gpg:
    def __init__(self, home: Path) -> None:
        self.home = home

    def run(
        self, *args: str, input: str | None = None, passphrase: str = ""
    ) -> subprocess.CompletedProcess[str]:
        assert GPG is not None
        return subprocess.run(
            [
                GPG,
                "--homedir",
                str(self.home),
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                passphrase,
                "--trust-model",
                "always",
                "--status-fd",
                "2",
                *args,
            ],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str, input: str | None = None, passphrase: str = "") -> str:
        result = self.run(*args, input=input, passphrase=passphrase)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def generate(self, name: str, primary: str, encryption: str) -> GpgKey:
        uid = f"{name} <{name}@agent-mailbox>"
        self.ok("--rfc4880", "--quick-gen-key", uid, primary, "sign", "0", passphrase=PASSPHRASE)
        listing = self.ok("--with-colons", "--list-keys", uid)
        fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        self.ok(
            "--rfc4880",
            "--quick-add-key",
            fingerprint,
            encryption,
            "encr",
            "0",
            passphrase=PASSPHRASE,
        )
        return GpgKey(name, fingerprint, self.ok("--armor", "--export", fingerprint))

    def import_key(self, armored: str) -> None:
        self.ok("--import", input=armored)


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gpg]:
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    yield Gpg(home)
    # the agent gpg started for this home; ours to stop
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


@pytest.fixture(scope="module")
def gpg_keys(gpg: Gpg) -> dict[str, GpgKey]:
    return {
        "ed25519": gpg.generate("gpg-ed", "ed25519", "cv25519"),
        "rsa4096": gpg.generate("gpg-rsa", "rsa4096", "rsa4096"),
    }


@pytest.fixture(scope="module")
def ours(gpg: Gpg) -> PrivateKey:
    key = PrivateKey.generate("our-agent")
    gpg.import_key(key.public_armored())
    return key


@pytest.mark.parametrize("flags", [[], ["--rfc4880"]], ids=["gpg-defaults", "rfc4880"])
@pytest.mark.parametrize("kind", ["ed25519", "rsa4096"])
def test_what_gpg_encrypts_and_signs_to_our_published_key_we_decrypt_and_verify(
    gpg: Gpg, gpg_keys: dict[str, GpgKey], ours: PrivateKey, kind: str, flags: list[str]
) -> None:
    sender = gpg_keys[kind]
    armored = gpg.ok(
        *flags,
        "--armor",
        "--sign",
        "--encrypt",
        "--local-user",
        sender.fingerprint,
        "--recipient",
        ours.fingerprint,
        input=TEXT,
        passphrase=PASSPHRASE,
    )
    directory_key = PublicKey.parse(sender.public_armored, sender.name)
    text, verification = openpgp.decrypt_and_verify(armored, ours, directory_key)
    assert text == TEXT
    assert verification.status == "valid" and verification.fingerprint == sender.fingerprint


@pytest.mark.parametrize("kind", ["ed25519", "rsa4096"])
def test_what_we_encrypt_and_sign_gpg_decrypts_and_verifies(
    gpg: Gpg, gpg_keys: dict[str, GpgKey], ours: PrivateKey, kind: str
) -> None:
    recipient = gpg_keys[kind]
    sealed = openpgp.encrypt_and_sign(
        TEXT, PublicKey.parse(recipient.public_armored, recipient.name), ours
    )
    result = gpg.run("--decrypt", input=sealed, passphrase=PASSPHRASE)
    assert result.returncode == 0, result.stderr
    assert result.stdout == TEXT
    status = result.stderr.splitlines()
    assert "[GNUPG:] DECRYPTION_OKAY" in status and "[GNUPG:] GOODMDC" in status
    [valid] = [line for line in status if line.startswith("[GNUPG:] VALIDSIG ")]
    assert valid.split()[2] == ours.fingerprint


@pytest.mark.parametrize("kind", ["ed25519", "rsa4096"])
def test_a_key_made_by_gpg_works_as_our_own_private_key(
    gpg: Gpg, gpg_keys: dict[str, GpgKey], ours: PrivateKey, kind: str
) -> None:
    made = gpg_keys[kind]
    exported = gpg.ok("--armor", "--export-secret-keys", made.fingerprint, passphrase=PASSPHRASE)
    key = PrivateKey.from_armored(exported, PASSPHRASE)
    assert key.fingerprint == made.fingerprint and key.belongs_to(made.name)
    # a peer (us) writes to it, and it reads
    sealed = openpgp.encrypt_and_sign(TEXT, PublicKey.parse(made.public_armored, made.name), ours)
    text, verification = openpgp.decrypt_and_verify(sealed, key, ours.public_key("our-agent"))
    assert text == TEXT and verification.status == "valid"
    # it signs, and gpg agrees
    signed = openpgp.encrypt_and_sign(TEXT, ours.public_key("our-agent"), key)
    assert (
        openpgp.decrypt_and_verify(signed, ours, PublicKey.parse(made.public_armored, made.name))[
            1
        ].fingerprint
        == made.fingerprint
    )


def test_a_gpg_exported_key_with_the_wrong_passphrase_is_a_passphrase_error(
    gpg: Gpg, gpg_keys: dict[str, GpgKey]
) -> None:
    made = gpg_keys["ed25519"]
    exported = gpg.ok("--armor", "--export-secret-keys", made.fingerprint, passphrase=PASSPHRASE)
    with pytest.raises(PassphraseError):
        PrivateKey.from_armored(exported, "not it")

"""`mailbox-mcp keys generate|publish|show`: the owner's OpenPGP key, made here, published to the
directory (contract, section 4).

The private key lives in MAILBOX_PGP_PRIVATE_KEY_FILE (default: in the state
dir), mode 0600, protected by a passphrase unless the owner says
`--no-passphrase`. The passphrase comes from MAILBOX_PGP_PASSPHRASE, or from a
prompt when the command runs in a terminal; the bridge itself can only read it
from MAILBOX_PGP_PASSPHRASE.

Publishing sends the armored public key and, as the directory's `public_key`,
the SPKI PEM of the signing key's public part. `key_version` starts at 1 and
goes up by one whenever a different key is published; publishing the same key
again keeps its version.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbox_mcp.server_link.client import MailboxAPI
from mailbox_mcp.settings import BridgeSettings

if TYPE_CHECKING:
    from mailbox_mcp.e2e.openpgp import PrivateKey

__all__ = ["add_keys_parser", "run_keys"]

RSA_SIZES = (2048, 3072, 4096)


def add_keys_parser(commands: Any) -> None:
    """Add `keys` and its sub-commands to the top-level sub-parsers."""
    keys = commands.add_parser("keys", help="your OpenPGP key for end-to-end encryption")
    sub = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND", required=True)
    p = sub.add_parser("generate", help="make a key pair (Ed25519 + Curve25519 by default)")
    p.add_argument(
        "--rsa", type=int, choices=RSA_SIZES, metavar="BITS", help="an RSA key instead (4096)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing private key")
    p.add_argument("--no-passphrase", action="store_true", help="store the private key unprotected")
    p.add_argument("--name", help="the agent name for the user id (default: the registered one)")
    sub.add_parser("publish", help="publish the public key in the mailbox directory")
    sub.add_parser("show", help="the local key's fingerprint, and what the directory has")


async def run_keys(settings: BridgeSettings, args: argparse.Namespace) -> int:
    from mailbox_mcp.e2e.openpgp import CryptoError  # pgpy only for the commands that use it

    try:
        if args.keys_command == "generate":
            return await _generate(settings, args)
        if args.keys_command == "publish":
            return await _publish(settings)
        return await _show(settings)
    except CryptoError as exc:
        print(f"mailbox-mcp: {exc}", file=sys.stderr)
        return 1


def _configured_passphrase(settings: BridgeSettings) -> str | None:
    secret = settings.pgp_passphrase
    return secret.get_secret_value() if secret is not None and secret.get_secret_value() else None


def _new_passphrase(settings: BridgeSettings, args: argparse.Namespace) -> str | None:
    if args.no_passphrase:
        return None
    configured = _configured_passphrase(settings)
    if configured is not None:
        return configured
    if not sys.stdin.isatty():
        raise SystemExit(
            "mailbox-mcp: no passphrase for the new key: set MAILBOX_PGP_PASSPHRASE, run this in "
            "a terminal to be asked, or pass --no-passphrase"
        )
    first = getpass.getpass("Passphrase for the new key: ")
    if not first:
        raise SystemExit("mailbox-mcp: empty passphrase; pass --no-passphrase to mean it")
    if getpass.getpass("Repeat it: ") != first:
        raise SystemExit("mailbox-mcp: the passphrases differ; nothing was written")
    return first


async def _agent_name(settings: BridgeSettings, args: argparse.Namespace) -> str:
    if args.name:
        return str(args.name)
    key = settings.resolved_api_key()
    if not key:
        raise SystemExit(
            "mailbox-mcp: which agent is this key for? Run `mailbox-mcp register NAME` first, "
            "or pass --name NAME"
        )
    async with MailboxAPI(settings.server_url, key) as api:
        return (await api.me()).name


async def _generate(settings: BridgeSettings, args: argparse.Namespace) -> int:
    path = settings.pgp_key_path
    if path.exists() and not args.force:  # before asking for anything
        raise SystemExit(f"mailbox-mcp: {path} already exists: keep it, or pass --force")
    name = await _agent_name(settings, args)
    passphrase = _new_passphrase(settings, args)
    from mailbox_mcp.e2e.openpgp import PrivateKey

    key = PrivateKey.generate(name, rsa_bits=args.rsa)
    key.write(path, passphrase, force=args.force)
    print(f"Generated an OpenPGP key for {name} ({key.algorithm}).")
    print(f"Fingerprint: {key.fingerprint}")
    protection = "passphrase-protected" if passphrase else "NOT passphrase-protected"
    print(f"Private key: {path} (mode 0600, {protection})")
    if passphrase:
        print("The bridge reads the passphrase from MAILBOX_PGP_PASSPHRASE in its environment.")
    print("Next: `mailbox-mcp keys publish`, so that peers can encrypt to you.")
    return 0


def _load_public_parts(path: Path) -> PrivateKey:
    from mailbox_mcp.e2e.openpgp import PrivateKey

    return PrivateKey.load(path, None, unlock=False)


async def _publish(settings: BridgeSettings) -> int:
    path = settings.pgp_key_path
    key = _load_public_parts(path)  # only the public parts go out
    if key.is_protected:
        passphrase = _configured_passphrase(settings)
        if passphrase is None:
            print(
                "warning: the key is passphrase-protected and MAILBOX_PGP_PASSPHRASE is not set; "
                "the bridge needs it in its environment to read encrypted mail",
                file=sys.stderr,
            )
        else:
            key.unlock(passphrase, str(path))  # fail now, not on the first encrypted message
            key.close()
    api_key = settings.resolved_api_key()
    if not api_key:
        raise SystemExit("mailbox-mcp: no API key. Run `mailbox-mcp register NAME` first.")
    async with MailboxAPI(settings.server_url, api_key) as api:
        name = (await api.me()).name
        if not key.belongs_to(name):
            raise SystemExit(
                f"mailbox-mcp: the key in {path} is made out to {key.user_ids}, not to "
                f"{name!r}: make one for this agent with `mailbox-mcp keys generate --force`"
            )
        current = await api.public_agent(name)
        version = current.key_version or 0
        if current.fingerprint != key.fingerprint:
            version += 1
        entry = await api.publish_keys(
            public_key=key.spki_pem(),
            algorithm=key.algorithm,
            key_version=version,
            openpgp_public_key=key.public_armored(),
        )
    print(f"Published the OpenPGP key of {name} (version {entry.key_version}).")
    print(f"Fingerprint: {entry.fingerprint}")
    return 0


async def _show(settings: BridgeSettings) -> int:
    path = settings.pgp_key_path
    key = _load_public_parts(path)
    print(f"Private key: {path}")
    print(f"Fingerprint: {key.fingerprint}")
    print(f"Algorithm  : {key.algorithm}")
    print(f"User ids   : {', '.join(key.user_ids)}")
    print(f"Passphrase : {'yes' if key.is_protected else 'no'}")
    api_key = settings.resolved_api_key()
    if not api_key:
        return 0
    async with MailboxAPI(settings.server_url, api_key) as api:
        name = (await api.me()).name
        published = await api.public_agent(name)
    if not published.fingerprint:
        print(f"Directory  : nothing published for {name}: run `mailbox-mcp keys publish`")
    elif published.fingerprint == key.fingerprint:
        print(f"Directory  : this key, version {published.key_version}")
    else:
        print(
            f"Directory  : a DIFFERENT key ({published.fingerprint}, version "
            f"{published.key_version}): run `mailbox-mcp keys publish`"
        )
    return 0

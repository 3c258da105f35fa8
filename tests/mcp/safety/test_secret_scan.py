"""The secret scan of outgoing text: each kind found wherever it sits, by name, never by value.

Every secret here is made up in the test, shaped like the real thing; none is real.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from collections.abc import Callable

import pgpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from mailbox_mcp.e2e.openpgp import PrivateKey
from mailbox_mcp.safety import handles
from mailbox_mcp.safety.secret_rules import LEFT_OUT, PLUGIN_KINDS, rules
from mailbox_mcp.safety.secret_scan import SecretScanner
from server.security import new_api_key

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "_-"
LOWER_HEX = "0123456789abcdef"
UPPER_ALNUM = string.ascii_uppercase + string.digits

PROSE = """Hi Bob,

thanks for the quick turnaround on the quarterly report. I went through the
appendix this morning and the revenue table looks right to me; churn is flat
compared with last quarter, which matches what the finance team said on Monday.

Two things before we send it on: the launch plan still says "TBD" for the date
in section 4, and figure 3 has last year's numbers. Could you check both? The
password policy section can stay as it is; nobody asked for changes there.

Best,
Alice
"""


def _random(alphabet: str, length: int, rng: random.Random) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _b64url_json(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _jwt(rng: random.Random) -> str:
    header = _b64url_json({"alg": "HS256", "typ": "JWT"})
    payload = _b64url_json({"sub": "agent-7", "iat": 1767225600})
    return f"{header}.{payload}.{_random(URLSAFE, 43, rng)}"


def _handle(rng: random.Random) -> str:
    return handles.mint(
        rng.randbytes(32), "alice", "bob", str(uuid.UUID(int=rng.getrandbits(128))), 0
    )


def _pem(
    key: PrivateKeyTypes, private_format: serialization.PrivateFormat, password: bytes | None
) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, private_format, encryption).decode()


def _rsa_pem(_: random.Random) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return _pem(key, serialization.PrivateFormat.TraditionalOpenSSL, None)


def _pkcs8_pem(_: random.Random) -> str:
    return _pem(ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.PKCS8, None)


def _encrypted_pkcs8_pem(_: random.Random) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return _pem(key, serialization.PrivateFormat.PKCS8, b"correct horse battery")


def _ec_pem(_: random.Random) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return _pem(key, serialization.PrivateFormat.TraditionalOpenSSL, None)


def _openssh(_: random.Random) -> str:
    return _pem(ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.OpenSSH, None)


def _pem_in_json(_: random.Random) -> str:
    # As in a cloud service-account file: the newlines escaped inside a JSON string.
    return json.dumps({"type": "service_account", "private_key": _pkcs8_pem(_)})


def _pgp_private(_: random.Random) -> str:
    return PrivateKey.generate("carol").to_armored(None)


def _putty(rng: random.Random) -> str:
    return (
        "PuTTY-User-Key-File-2: ssh-ed25519\nEncryption: none\nComment: carol\n"
        f"Public-Lines: 2\n{_random(ALNUM, 64, rng)}\n"
    )


# kind -> builders of well-shaped fake secrets (several where the kind has several shapes)
EXAMPLES: dict[str, list[Callable[[random.Random], str]]] = {
    "a private key": [
        _rsa_pem,
        _pkcs8_pem,
        _encrypted_pkcs8_pem,
        _ec_pem,
        _openssh,
        _pem_in_json,
        _pgp_private,
        _putty,
    ],
    "an Artifactory credential": [
        lambda r: "AKCp8" + _random(ALNUM, 68, r),
        lambda r: "artifactory_password: AP6" + _random(ALNUM, 20, r),
    ],
    "an AWS access key": [
        lambda r: "AKIA" + _random(UPPER_ALNUM, 16, r),
        lambda r: "aws_secret_access_key = " + _random(ALNUM + "/+", 40, r),
    ],
    "a Cloudant credential": [
        lambda r: "cloudant_password = " + _random(LOWER_HEX, 64, r),
        # "db.cloudant.com" is too short to be a run itself: found from the password's window.
        lambda r: f"https://db:{_random(LOWER_HEX, 64, r)}@db.cloudant.com",
    ],
    "a Discord bot token": [
        lambda r: (
            "M"
            + _random(URLSAFE, 23, r)
            + "."
            + _random(URLSAFE, 6, r)
            + "."
            + _random(URLSAFE, 27, r)
        )
    ],
    "a GitHub token": [lambda r: "ghp_" + _random(ALNUM, 36, r)],
    "an IBM Cloud API key": [lambda r: "ibm_cloud_iam_api_key: " + _random(URLSAFE, 44, r)],
    "an IBM Cloud Object Storage key": [
        lambda r: "cos_hmac_secret_access_key = " + _random(LOWER_HEX, 48, r)
    ],
    "a JSON Web Token": [_jwt],
    "a Mailchimp API key": [lambda r: _random(LOWER_HEX, 32, r) + "-us14"],
    "an npm token": [lambda r: "npm_" + _random(ALNUM, 36, r)],
    "a SendGrid API key": [
        lambda r: "SG." + _random(URLSAFE, 22, r) + "." + _random(URLSAFE, 43, r)
    ],
    "a Slack token": [
        lambda r: (
            f"xoxb-{_random(string.digits, 12, r)}-{_random(string.digits, 13, r)}-"
            + _random(string.ascii_lowercase + string.digits, 24, r)
        ),
        lambda r: (
            "https://hooks.slack.com/services/T"
            + _random(UPPER_ALNUM, 10, r)
            + "/B"
            + _random(UPPER_ALNUM, 10, r)
            + "/"
            + _random(ALNUM, 24, r)
        ),
    ],
    "a SoftLayer credential": [
        lambda r: "softlayer_api_key = " + _random(string.ascii_lowercase + string.digits, 64, r)
    ],
    "a Square OAuth secret": [lambda r: "sq0csp-" + _random(URLSAFE, 43, r)],
    "a Stripe key": [
        lambda r: "sk_live_" + _random(ALNUM, 24, r),
        lambda r: "rk_live_" + _random(ALNUM, 24, r),
    ],
    "a Twilio API key": [
        lambda r: "AC" + _random(LOWER_HEX, 32, r),
        lambda r: "SK" + _random(LOWER_HEX, 32, r),
    ],
    "an Azure storage key": [
        lambda r: (
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey="
            + _random(ALNUM + "+/", 86, r)
            + "==;EndpointSuffix=core.windows.net"
        ),
        # The plugin looks for "azure" up to two lines away.
        lambda r: "# Azure storage, account acme\n\nkey: " + _random(ALNUM + "+/", 86, r) + "==",
    ],
    "a password in a URL": [
        lambda r: f"postgres://report:{_random(ALNUM, 12, r)}@db.internal:5432/finance"
    ],
    "a mailbox API key": [lambda _: new_api_key()],
    "a reply handle": [_handle, lambda r: _handle(r).upper()],
    "an OpenAI API key": [
        lambda r: "sk-" + _random(ALNUM, 20, r) + "T3BlbkFJ" + _random(ALNUM, 20, r),
        lambda r: "sk-proj-" + _random(URLSAFE, 74, r) + "T3BlbkFJ" + _random(URLSAFE, 74, r),
    ],
    "an Anthropic API key": [
        lambda r: "sk-ant-api03-" + _random(URLSAFE, 93, r) + "AA",
    ],
    "a Google API key": [lambda r: "AIza" + _random(URLSAFE, 35, r)],
    "a GitLab token": [lambda r: "glpat-" + _random(URLSAFE, 20, r)],
    "a Hugging Face token": [lambda r: "hf_" + _random(string.ascii_letters, 34, r)],
}
# A Cloudant URL with its password in it is also a password in a URL.
ALSO = {"a Cloudant credential": {"a password in a URL"}}
CASES = [
    pytest.param(kind, build, id=f"{kind}-{index}")
    for kind, builders in EXAMPLES.items()
    for index, build in enumerate(builders)
]

# Where a secret may sit: alone, mid-sentence in prose, on its own line of a
# multi-line text, at the end of one long line (no line breaks), after non-ASCII text.
PLACES: dict[str, Callable[[str], str]] = {
    "alone": lambda secret: secret,
    "in prose": lambda secret: PROSE + f"\nHere it is: {secret} — keep it safe.\n" + PROSE,
    "multi-line": lambda secret: f"```\nconfig:\n  value:\n{secret}\n```\n" + PROSE,
    "one long line": lambda secret: PROSE.replace("\n", " ") * 2 + f" use {secret} please",
    "after non-ASCII": lambda secret: "Grüße, ünïcödé ✓ — 日本語のテキスト。 " * 20 + secret,
}


@pytest.fixture(scope="module")
def scanner() -> SecretScanner:
    return SecretScanner()


def _example(kind: str, build: Callable[[random.Random], str]) -> str:
    return build(random.Random(kind))


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize(("kind", "build"), CASES)
def test_each_kind_of_secret_is_reported_by_its_kind_wherever_it_sits(
    scanner: SecretScanner, kind: str, build: Callable[[random.Random], str], place: str
) -> None:
    secret = _example(kind, build)

    found = scanner.find(PLACES[place](secret))

    assert kind in found
    assert set(found) - {kind} <= ALSO.get(kind, set())


@pytest.mark.parametrize(("kind", "build"), CASES)
def test_the_result_holds_names_from_a_fixed_list_and_never_the_secret(
    scanner: SecretScanner, kind: str, build: Callable[[random.Random], str]
) -> None:
    secret = _example(kind, build)

    found = scanner.find(f"here: {secret}")

    assert found
    assert set(found) <= set(rules().kinds)
    assert not any(secret in entry for entry in found)


def test_several_kinds_in_one_text_are_reported_once_each_in_the_same_order_whatever_the_text(
    scanner: SecretScanner,
) -> None:
    rng = random.Random(1)
    github, aws = "ghp_" + _random(ALNUM, 36, rng), "AKIA" + _random(UPPER_ALNUM, 16, rng)
    key = _pkcs8_pem(rng)

    first = scanner.find(f"{github}\n{aws}\n{key}\n{github} again")
    second = scanner.find(f"{key}\n{aws} and {github}")

    assert first == second
    assert sorted(first) == sorted(["a GitHub token", "an AWS access key", "a private key"])


GATEWAY_TOKEN = "oc-gw-" + "7f3c" * 8


@pytest.mark.parametrize(
    "text",
    [
        GATEWAY_TOKEN,
        f"the token is {GATEWAY_TOKEN}.",
        f"Authorization: Bearer {GATEWAY_TOKEN}\nHost: 127.0.0.1",
        f"url=ws://127.0.0.1:18789/?token={GATEWAY_TOKEN}&x=1",
        f"glued{GATEWAY_TOKEN}glued",
        PROSE + GATEWAY_TOKEN,
    ],
)
def test_an_exact_value_is_found_wherever_it_appears_and_reported_by_the_kind_given(
    text: str,
) -> None:
    scanner = SecretScanner({"the OpenClaw gateway token": GATEWAY_TOKEN})

    assert scanner.find(text) == ["the OpenClaw gateway token"]


def test_exact_values_come_first_in_the_order_given_then_the_other_kinds() -> None:
    key = new_api_key()
    scanner = SecretScanner(
        {"the OpenClaw gateway token": GATEWAY_TOKEN, "this agent's mailbox API key": key}
    )

    found = scanner.find(f"{key} and {GATEWAY_TOKEN}")

    assert found == [
        "the OpenClaw gateway token",
        "this agent's mailbox API key",
        "a mailbox API key",
    ]


def test_exact_values_shorter_than_8_characters_are_ignored() -> None:
    scanner = SecretScanner({"a short token": "abc1234", "an empty one": ""})

    assert scanner.find("the code abc1234 is in the note") == []
    assert scanner.find("") == []


def _uuid_and_hashes(rng: random.Random) -> str:
    return "\n".join(
        [
            f"message id {uuid.UUID(int=rng.getrandbits(128))}, session {uuid.uuid4()}",
            f"fixed in commit {_random(LOWER_HEX, 40, rng)} (short: {_random(LOWER_HEX, 7, rng)})",
            f"sha256 {hashlib.sha256(b'report.pdf').hexdigest()}  report.pdf",
            "sha512-" + base64.b64encode(hashlib.sha512(b"pkg").digest()).decode(),
            "md5 " + hashlib.md5(b"x", usedforsecurity=False).hexdigest().upper(),
        ]
    )


def _code() -> str:
    return """```python
import os

api_key = os.environ["OPENAI_API_KEY"]
password = getpass.getpass("Password: ")
token: str = request.headers["Authorization"].removeprefix("Bearer ")
client = Client(base_url="https://api.example.org/v1", timeout=30.0)
SECRET_KEY_SETTING_NAME = "DJANGO_SECRET_KEY"
def load_configuration_from_environment_variables(prefix: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(prefix)}
```"""


def _pgp_texts() -> list[str]:
    key = PrivateKey.generate("dave")
    message = pgpy.PGPMessage.new("Signed: the Q3 numbers are final.", cleartext=True)
    message |= key.key.sign(message)
    return [key.public_armored(), str(message), key.spki_pem()]


CLEAN = {
    "prose": PROSE * 4,
    "identifiers": _uuid_and_hashes(random.Random(2)),
    "identifiers on one line": _uuid_and_hashes(random.Random(3)).replace("\n", " "),
    "base64 of short text": "payload: "
    + base64.b64encode(b"Hello Bob, the report is attached and ready.").decode(),
    "email addresses": "write to alice.liddell-smith@finance.example-company.com or bob@ex.org",
    "urls without credentials": (
        "see https://docs.python.org/3/library/re.html#re.search and "
        "https://github.com/openclaw/openclaw/blob/main/docs/configuration-reference.md?tab=1 "
        "or ssh://git@github.com/openclaw/openclaw.git and https://alice@example.org/x"
    ),
    "numbers": "Revenue 12345678901234567890, phone +44 20 7946 0958, pi 3.14159265358979323846",
    "code without secrets": _code(),
    "slugs and paths": (
        "state-of-the-art-machine-learning-pipelines, sk-learn-pipeline-with-standard-scaler, "
        "/srv/mailbox/state/conversations/archive/2026-09-quarterly.json, "
        "hf_model_config_loader_for_testing, task-runner-configuration-file-for-v2"
    ),
    "a private key header without key material": (
        "An OpenSSH key file starts with -----BEGIN OPENSSH PRIVATE KEY----- and ends with "
        "-----END OPENSSH PRIVATE KEY-----; never paste what is in between.\n"
        "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----"
    ),
    "a token-shaped string whose JWT header is not JSON": "eyJ" + "hello.world.again" * 3,
    "a url with a password for example.com": "e.g. postgres://user:secret@example.com/db",
}


@pytest.mark.parametrize("text", CLEAN.values(), ids=CLEAN.keys())
def test_ordinary_text_passes_clean(scanner: SecretScanner, text: str) -> None:
    assert scanner.find(text) == []


def test_pgp_public_keys_signed_messages_and_public_pem_pass_clean(scanner: SecretScanner) -> None:
    for text in _pgp_texts():
        assert scanner.find(text) == [], text


def test_every_regex_plugin_of_bc_detect_secrets_is_used_or_deliberately_left_out() -> None:
    # An upgrade that adds a plugin fails here, so that someone names its kind and gate.
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    handled = {*PLUGIN_KINDS, *LEFT_OUT, "Azure Storage Account access key"}
    handled |= {"Basic Auth Credentials", "Private Key"}

    assert set(get_mapping_from_secret_type_to_class()) == handled

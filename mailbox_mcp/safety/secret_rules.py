"""What the secret scan looks for: kinds, their patterns, and the cheap tests that gate them.

The patterns come from bc-detect-secrets (Bridgecrew's maintained fork of
Yelp's detect-secrets): its regex-based plugins, called through their own
`analyze_string`, so the cheap validation some do stays (a JWT's header must
decode as JSON). Its high-entropy and keyword detectors are left out
(`LEFT_OUT`): they flag what agents legitimately exchange (UUIDs, git hashes,
message ids, base64 of ordinary text, "the password policy says..."). Ours are
added: mailbox API keys, reply handles, API token formats it lacks, PGP and
other PEM private key blocks.

Each pattern is gated (see `secret_scan`): by the shortest run of
`TOKEN_CHARS` its secret needs, and by literal words it cannot match without.
The gates are read off the patterns by hand; the tests hold one well-shaped
example per kind, so a gate that drifts from its pattern fails them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from mailbox_mcp.safety.handles import PATTERN as HANDLE_PATTERN
from mailbox_mcp.safety.handles import PREFIX as HANDLE_PREFIX

# Every character any pattern's secret is made of. A secret lies inside a
# maximal run of these, so a run shorter than a pattern's shortest secret
# rules the pattern out.
TOKEN_CHARS = string.ascii_letters + string.digits + "_-+/=.\\"
# No secret we look for is shorter (real Slack tokens and JWTs are far longer).
MIN_RUN = 16

PRIVATE_KEY = "a private key"
PASSWORD_IN_URL = "a password in a URL"
AZURE_KEY = "an Azure storage key"


@dataclass(frozen=True)
class Gate:
    """What a pattern cannot match without: one of `words` (if any) and `pattern` (if any).

    A word with an upper-case letter is looked for as it is, any other in the
    lower-cased text (a superset for case-sensitive lower-case patterns);
    `pattern` is searched in the lower-cased text. A few `in` lookups cost far
    less than the patterns they spare, most of which the regex engine must try
    at every position.
    """

    words: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None

    def met(self, text: str, lowered: str) -> bool:
        if self.words and not any(
            word in (lowered if word.islower() else text) for word in self.words
        ):
            return False
        return self.pattern is None or self.pattern.search(lowered) is not None


_NONE = Gate()

# bc-detect-secrets plugins by `secret_type` (documented as stable): our name
# for the kind, the shortest run its secrets need, its gate.
PLUGIN_KINDS: dict[str, tuple[str, int, Gate]] = {
    # AKC… tokens, or AP… passwords after "artifactory"/"jfrog"/"buildkit" (real ones: longer)
    "Artifactory Credentials": (
        "an Artifactory credential",
        MIN_RUN,
        Gate(("AKC", "artif", "jfrog", "buildkit")),
    ),
    # AKIA… + 16, or 40 characters after "aws…key"
    "AWS Access Key": (
        "an AWS access key",
        20,
        Gate(("A3T", "ABIA", "ACCA", "AKIA", "ASIA", "aws")),
    ),
    # cl/clou/cloudant, maybe - or _, maybe api, then key/pw/…; or a …cloudant.com URL
    "Cloudant Credentials": (
        "a Cloudant credential",
        24,
        Gate(
            pattern=re.compile(r"cl(?:oudant|ou)?[-_]?(?:api)?(?:key|pw|pass|token)|cloudant\.com")
        ),
    ),
    # 24 . 6 . 27: no literal, but a long run
    "Discord Bot Token": ("a Discord bot token", 59, _NONE),
    "GitHub Token": ("a GitHub token", 40, Gate(("ghp_", "gho_", "ghu_", "ghs_", "ghr_"))),
    # key/pwd/password/pass/token (a prefix such as "ibm_cloud_" is optional) and 44 characters
    "IBM Cloud IAM Key": ("an IBM Cloud API key", 44, Gate(("key", "pwd", "pass", "token"))),
    "IBM COS HMAC Credentials": (
        "an IBM Cloud Object Storage key",
        48,
        Gate(pattern=re.compile(r"secret[-_]?(?:access)?[-_]?key")),
    ),
    "JSON Web Token": ("a JSON Web Token", MIN_RUN, Gate(("eyJ",))),
    "Mailchimp Access Key": ("a Mailchimp API key", 36, Gate(("-us",))),  # 32 + -us1
    "NPM tokens": ("an npm token", 36, Gate(("npm_", "_authToken", "NPM"))),
    "SendGrid API Key": ("a SendGrid API key", 69, Gate(("SG.",))),  # SG. 22 . 43
    "Slack Token": ("a Slack token", MIN_RUN, Gate(("xox", "hooks.slack.com"))),
    # sl/softlayer, maybe - or _, maybe api, maybe - or _, then key/pwd/…; or its API URL
    "SoftLayer Credentials": (
        "a SoftLayer credential",
        64,
        Gate(
            pattern=re.compile(
                r"s(?:oftlayer|l)[-_]?(?:api)?[-_]?(?:key|pwd|pass|token)|api\.softlayer\.com"
            )
        ),
    ),
    "Square OAuth Secret": ("a Square OAuth secret", 50, Gate(("sq0csp-",))),  # sq0csp- + 43
    "Stripe Access Key": ("a Stripe key", 32, Gate(("k_live_",))),  # sk_live_ + 24
    "Twilio API Key": ("a Twilio API key", 34, Gate(("AC", "SK"))),  # AC/SK + 32
}
# These need more than a window around a run: their own rules below.
_AZURE = "Azure Storage Account access key"
_BASIC_AUTH = "Basic Auth Credentials"
_PRIVATE_KEY = "Private Key"
LEFT_OUT = frozenset({"Base64 High Entropy String", "Hex High Entropy String", "Secret Keyword"})

_NOT_AFTER_TOKEN = r"(?<![A-Za-z0-9_-])"
# Our own kinds, and formats bc-detect-secrets lacks: (kind, pattern, shortest run, gate).
OWN: tuple[tuple[str, re.Pattern[str], int, Gate], ...] = (
    # server/security.py: amb_ + 43 base62 + a 6 base62 checksum; any 32 is plenty.
    ("a mailbox API key", re.compile(r"amb_[0-9A-Za-z]{32,}"), 36, Gate(("amb_",))),
    ("a reply handle", HANDLE_PATTERN, len(HANDLE_PREFIX) + 20, Gate((HANDLE_PREFIX.lower(),))),
    (
        "an Anthropic API key",
        re.compile(_NOT_AFTER_TOKEN + r"sk-ant-[A-Za-z0-9_-]{32,}"),
        39,
        Gate(("sk-ant-",)),
    ),
    # sk-…, sk-proj-…, sk-svcacct-…: real keys hold upper case ("T3BlbkFJ"),
    # lower-case slugs such as "sk-learn-…" do not.
    (
        "an OpenAI API key",
        re.compile(_NOT_AFTER_TOKEN + r"sk-(?!ant-)(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{32,}"),
        35,
        Gate(("sk-",)),
    ),
    ("a Google API key", re.compile(r"AIza[0-9A-Za-z_-]{35}"), 39, Gate(("AIza",))),
    ("a GitLab token", re.compile(r"glpat-[0-9A-Za-z_-]{20,}"), 26, Gate(("glpat-",))),
    # Hugging Face user tokens are hf_ and letters only.
    ("a Hugging Face token", re.compile(r"(?<![A-Za-z0-9_])hf_[A-Za-z]{30,}"), 33, Gate(("hf_",))),
)
# PEM ("-----BEGIN RSA PRIVATE KEY-----", "…ENCRYPTED PRIVATE KEY…") and OpenPGP
# ("…PGP PRIVATE KEY BLOCK…", which the plugin misses) blocks that hold key
# material: armor headers ("Comment: …") may come first, and newlines may be
# escaped (a key inside JSON). The header alone, as in "the file starts with
# -----BEGIN …", is no secret. A header line ends at its first newline, so
# that no text can make the engine try every way of splitting it.
_NEWLINE = r"(?:\n|\\n)"
_SPACE = r"(?:\s|\\[rn])*"
_KEY_BLOCK = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    + _SPACE
    + r"(?:[A-Za-z][A-Za-z-]*:(?:[^\n\\]|\\[^n])*"
    + _NEWLINE
    + _SPACE
    + r")*[A-Za-z0-9+/=]{16}"
)


@dataclass(frozen=True)
class WindowRule:
    """Searched in windows around runs of at least `min_run` token characters, if `gate` is met."""

    kind: str
    min_run: int
    gate: Gate
    holds: Callable[[str], bool]
    lines_around: int = 0  # > 0: search the run's line and this many either side instead


@dataclass(frozen=True)
class TextRule:
    """Searched in the whole text when it holds one of `needles` (case-sensitive)."""

    kind: str
    needles: tuple[str, ...]
    holds: Callable[[str], bool]


@dataclass(frozen=True)
class Rules:
    window: tuple[WindowRule, ...]
    text: tuple[TextRule, ...]
    kinds: tuple[str, ...]  # the order kinds are reported in


@cache
def rules() -> Rules:
    """All rules, built once per process."""
    # Imported here: detect_secrets takes ~0.2 s to import, paid only by processes that scan.
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    plugins = get_mapping_from_secret_type_to_class()

    def plugin(secret_type: str) -> RegexBasedDetector:
        detector = plugins[secret_type]()
        assert isinstance(detector, RegexBasedDetector), secret_type
        return detector

    def matches(detector: RegexBasedDetector) -> Callable[[str], bool]:
        # Its `analyze_string`, not the bare denylist: that keeps the plugin's own checks.
        return lambda scope: next(iter(detector.analyze_string(scope)), None) is not None

    def lines_flagged(detector: RegexBasedDetector) -> Callable[[str], bool]:
        # `analyze_line` for the checks these two make there (Azure: "azure" or "AccountKey"
        # near the key; Basic Auth: no example.com). Neither verifies over the network.
        return lambda scope: bool(detector.analyze_line(filename="", line=scope))

    window = [
        WindowRule(kind, min_run, gate, matches(plugin(secret_type)))
        for secret_type, (kind, min_run, gate) in PLUGIN_KINDS.items()
        if secret_type in plugins
    ]
    # 86 base64 characters and "==", with "azure" or "AccountKey" within two lines.
    azure_gate = Gate(("azure", "accountk", "account_k"))
    window.append(
        WindowRule(AZURE_KEY, 88, azure_gate, lines_flagged(plugin(_AZURE)), lines_around=2)
    )
    window += [WindowRule(kind, run, gate, _searcher(pattern)) for kind, pattern, run, gate in OWN]

    private_key = matches(plugin(_PRIVATE_KEY))
    basic_auth = lines_flagged(plugin(_BASIC_AUTH))
    text = (
        TextRule(
            PRIVATE_KEY,
            ("PRIVATE KEY", "PuTTY-User-Key-File"),
            lambda scope: _KEY_BLOCK.search(scope) is not None or private_key(scope),
        ),
        # A password can be short: no run to wait for. Line by line, as the plugin expects.
        TextRule(
            PASSWORD_IN_URL,
            ("://",),
            lambda scope: any(
                basic_auth(line) for line in scope.split("\n") if "://" in line and "@" in line
            ),
        ),
    )
    kinds = (PRIVATE_KEY, *(rule.kind for rule in window), PASSWORD_IN_URL)
    return Rules(tuple(window), text, tuple(dict.fromkeys(kinds)))


def _searcher(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda scope: pattern.search(scope) is not None

"""``mp-apiserver``'s authentication flags (kube-apiserver's names) → AuthenticationOptions."""

from __future__ import annotations

import argparse
from pathlib import Path

from apiserver.auth.authn import AuthenticationConfigError, AuthenticationOptions
from apiserver.auth.serviceaccount_tokens import DEFAULT_ISSUER

SIGNING_KEY = "sa.key"  # in --cert-dir when --service-account-signing-key-file is not given


def add_authentication_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token-auth-file", type=Path, metavar="FILE",
                   help="static bearer tokens, CSV lines: token,user,uid[,\"group1,group2\"]")
    p.add_argument("--service-account-issuer", action="append", metavar="URL",
                   help=f"issuer of ServiceAccount tokens (repeatable: the first signs, all "
                        f"are accepted; default {DEFAULT_ISSUER})")
    p.add_argument("--service-account-signing-key-file", type=Path, metavar="FILE",
                   help=f"RSA private key (PEM) signing ServiceAccount tokens; default "
                        f"<cert-dir>/{SIGNING_KEY}, created if absent")
    p.add_argument("--service-account-key-file", action="append", type=Path, default=[],
                   metavar="FILE", help="more PEM public keys, private keys or certificates "
                                        "ServiceAccount tokens are verified with (repeatable)")
    p.add_argument("--api-audiences", type=_audiences, default=(), metavar="AUD[,AUD...]",
                   help="audiences a token must be for (default: the issuers)")


def _audiences(text: str) -> tuple[str, ...]:
    found = tuple(a.strip() for a in text.split(",") if a.strip())
    if not found:
        raise argparse.ArgumentTypeError("must name at least one audience")
    return found


def authentication_options(args: argparse.Namespace, cert_dir: Path | None
                           ) -> AuthenticationOptions:
    """The options; with no cert dir (every TLS file given), the signing key must be too."""
    signing_key = args.service_account_signing_key_file
    if signing_key is None:
        if cert_dir is None:
            raise AuthenticationConfigError(
                "--service-account-signing-key-file is required when the TLS files are "
                "given without --cert-dir")
        signing_key = cert_dir / SIGNING_KEY
    return AuthenticationOptions(
        service_account_signing_key_file=signing_key,
        token_auth_file=args.token_auth_file,
        service_account_key_files=tuple(args.service_account_key_file),
        service_account_issuers=tuple(args.service_account_issuer or (DEFAULT_ISSUER,)),
        api_audiences=args.api_audiences)

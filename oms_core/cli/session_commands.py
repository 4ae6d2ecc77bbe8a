"""``oms login`` and ``oms logout``: a session token from a WebAuthn assertion over the
server's login challenge, kept in the token file until logout."""

from __future__ import annotations

import argparse

from oms_core.cli.client_connection import open_client, relying_party, token_path
from oms_core.cli.client_output import print_json, when
from oms_core.cli.exit_status import EXIT_OK
from oms_core.cli.token_file import load_token, remove_token, save_token


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser],
             connect: argparse.ArgumentParser, authenticator: argparse.ArgumentParser
             ) -> None:
    login = commands.add_parser("login", parents=[connect, authenticator],
                                help="log in with a WebAuthn assertion")
    login.add_argument("--user", required=True, help="user id")
    login.set_defaults(handler=_login)
    commands.add_parser("logout", parents=[connect], help="end the session"
                        ).set_defaults(handler=_logout)


def _login(args: argparse.Namespace) -> int:
    # Imported here: a DEMO ONLY authenticator loads test_only, which `oms serve` refuses.
    from oms_core.cli.authenticator_file import load_authenticator, save_authenticator

    rp = relying_party(args)
    authenticator = load_authenticator(args.authenticator)
    with open_client(args) as client:
        challenge = client.login_begin(args.user)
        assertion = authenticator.get_assertion(rp.rp_id, rp.origin, challenge,
                                                authenticator.credential_id)
        save_authenticator(args.authenticator, authenticator)  # the counter moved on
        resp = client.login_finish(args.user, assertion.to_json())
    path = token_path(args)
    save_token(path, resp.token)
    if args.json:
        print_json({"user": args.user, "idle_expires_at": resp.idle_expires_at,
                    "absolute_expires_at": resp.absolute_expires_at, "token_file": str(path)})
    else:
        print(f"logged in as {args.user} (token in {path}); the session ends after "
              f"{when(resp.idle_expires_at)} if idle, at {when(resp.absolute_expires_at)} "
              "at the latest")
    return EXIT_OK


def _logout(args: argparse.Namespace) -> int:
    path = token_path(args)
    with open_client(args) as client:
        client.logout(load_token(path))
    remove_token(path)
    print("logged out")
    return EXIT_OK

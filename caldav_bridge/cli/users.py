"""``caldav-bridge user …`` and ``multi-user``: the operator administers users and the switch
(the rules are ``domain.administration``'s, the same as on the administration page)."""

from __future__ import annotations

import argparse
import getpass
import sys

from caldav_bridge.cli import tables
from caldav_bridge.cli.base import ZONE, Commands, Context, command, group
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import InvalidInput


def _read_password(from_stdin: bool) -> str:
    """The password typed twice at a terminal, or one line of stdin; the domain judges it."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Password again: "):
        raise InvalidInput("the two passwords differ")
    return password


def cmd_user_add(ctx: Context, args: argparse.Namespace) -> None:
    password = _read_password(args.password_stdin) if not args.no_password else None
    with ctx.database.session(write=True) as session:
        user = ctx.administration(session).add_user(
            args.login, args.name, args.email, password, args.timezone, args.admin
        )
        print(f"user {user.login} added")


def cmd_user_list(ctx: Context, _args: argparse.Namespace) -> None:
    with ctx.database.session() as session:
        rows = [
            [
                u.login,
                u.display_name,
                ", ".join(e.address for e in u.emails),
                u.timezone,
                "yes" if u.active else "no",
                "yes" if u.is_admin else "",
            ]
            for u in Directory(session).users()
        ]
    print(tables.render(["Login", "Name", "Email", "Time zone", "Active", "Admin"], rows))


def cmd_user_passwd(ctx: Context, args: argparse.Namespace) -> None:
    password = _read_password(args.password_stdin)
    with ctx.database.session(write=True) as session:
        ctx.administration(session).set_password(args.login, password)
    print(f"password of {args.login} changed")


def cmd_user_active(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=True) as session:
        ctx.administration(session).set_active(args.login, args.active)
    print(f"user {args.login} {'activated' if args.active else 'deactivated'}")


def cmd_user_admin(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=True) as session:
        ctx.administration(session).set_administrator(args.login, args.state == "on")
    print(f"{args.login} {'is' if args.state == 'on' else 'is no longer'} an administrator")


def cmd_multi_user(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=args.state != "status") as session:
        if args.state != "status":
            ctx.administration(session).set_multi_user(args.state == "on")
        enabled = ctx.service(session).multi_user_enabled()
    print(f"multi-user interactions are {'on' if enabled else 'off'}")


def add_commands(commands: Commands) -> None:
    users = group(commands, "user", "manage users")
    sub = command(users, "add", cmd_user_add, "add a user (password prompted, or read from stdin)")
    sub.add_argument("login")
    sub.add_argument("--name", required=True, help="display name")
    sub.add_argument("--email", action="append", default=[], help="email address (repeatable)")
    sub.add_argument(
        "--timezone", type=ZONE, default="UTC", help="IANA time zone, e.g. Europe/Paris"
    )
    sub.add_argument("--admin", action="store_true", help="may change CRM settings")
    sub.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sub.add_argument("--no-password", action="store_true", help="the user cannot log in yet")
    command(users, "list", cmd_user_list, "list users")
    sub = command(users, "passwd", cmd_user_passwd, "set a user's password")
    sub.add_argument("login")
    sub.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    for name, active in (("activate", True), ("deactivate", False)):
        sub = command(users, name, cmd_user_active, f"{name} a user")
        sub.add_argument("login")
        sub.set_defaults(active=active)
    sub = command(users, "admin", cmd_user_admin, "make a user an administrator, or no longer")
    sub.add_argument("login")
    sub.add_argument("state", choices=["on", "off"])

    sub = command(
        commands, "multi-user", cmd_multi_user, "switch multi-user interactions on or off"
    )
    sub.add_argument("state", choices=["on", "off", "status"])

"""``caldav-bridge feed`` and ``rsvp-revoke``: the links that work without a password, made,
shown, renewed and revoked."""

from __future__ import annotations

import argparse

from sqlalchemy.orm import Session

from caldav_bridge.cli.base import Commands, Context, command
from caldav_bridge.domain import links, tokens
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import InvalidInput, NotFound


def _feed_subject(session: Session, args: argparse.Namespace) -> tokens.FeedSubject:
    if (args.login is None) == (args.room is None):
        raise InvalidInput("name a user (LOGIN) or a room (--room SLUG)")
    directory = Directory(session)
    return directory.user(args.login) if args.login else directory.resource(args.room)


def cmd_feed(ctx: Context, args: argparse.Namespace) -> None:
    from caldav_bridge.web import feeds

    with ctx.database.session(write=args.action != "show") as session:
        subject = _feed_subject(session, args)
        name = args.login or args.room
        if args.action == "revoke":
            tokens.revoke_feed(subject)
            print(f"{name}'s feed is revoked: its link no longer works")
            return
        if args.action == "rotate" or (args.action == "create" and subject.feed_nonce is None):
            tokens.rotate_feed(subject)
        token = tokens.feed_token(session, subject)
        if token is None:
            raise NotFound(f"{name} has no feed: make one with 'caldav-bridge feed create'")
        address = links.feed(ctx.settings.public_url, token)
        print(f"{feeds.title(subject)}\n  {links.webcal(address)}\n  {address}")
        if args.action == "rotate":
            print("the previous link no longer works")


def cmd_rsvp_revoke(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=True) as session:
        tokens.revoke_rsvp(Directory(session).user(args.login))
    print(f"every answer link sent to {args.login} so far no longer works")


def add_commands(commands: Commands) -> None:
    sub = command(
        commands, "feed", cmd_feed, "a user's or a room's ICS feed link (no password needed)"
    )
    sub.add_argument("action", choices=["create", "show", "rotate", "revoke"])
    sub.add_argument("login", nargs="?", help="the user's login")
    sub.add_argument("--room", help="a room's (or other resource's) slug instead of a user")
    sub = command(
        commands, "rsvp-revoke", cmd_rsvp_revoke, "stop every answer link sent to a user so far"
    )
    sub.add_argument("login")

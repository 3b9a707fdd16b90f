"""``caldav-bridge resource …``: the operator adds, lists and (de)activates rooms, vehicles and
equipment."""

from __future__ import annotations

import argparse

from caldav_bridge.cli import tables
from caldav_bridge.cli.base import Commands, Context, command, group, whole
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.models import ResourceKind


def cmd_resource_add(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=True) as session:
        resource = ctx.administration(session).add_resource(
            args.slug, args.name, args.email, ResourceKind(args.kind), args.capacity
        )
        print(f"{resource.kind.value} {resource.slug} added")


def cmd_resource_list(ctx: Context, _args: argparse.Namespace) -> None:
    with ctx.database.session() as session:
        rows = [
            [
                r.slug,
                r.kind.value,
                r.name,
                r.email,
                str(r.capacity or ""),
                "yes" if r.active else "no",
            ]
            for r in Directory(session).resources()
        ]
    print(tables.render(["Id", "Kind", "Name", "Address", "Capacity", "Active"], rows))


def cmd_resource_active(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.database.session(write=True) as session:
        ctx.administration(session).set_resource_active(args.slug, args.active)
    print(f"{args.slug} {'activated' if args.active else 'deactivated'}")


def add_commands(commands: Commands) -> None:
    resources = group(commands, "resource", "manage rooms and other resources")
    sub = command(resources, "add", cmd_resource_add, "add a room, vehicle or equipment")
    sub.add_argument("slug", help="short identifier, e.g. room-everest")
    sub.add_argument("--name", required=True)
    sub.add_argument("--email", required=True, help="its calendar address")
    sub.add_argument("--kind", choices=[k.value for k in ResourceKind], default="room")
    sub.add_argument("--capacity", type=whole(1, 100_000))
    command(resources, "list", cmd_resource_list, "list resources")
    for name, active in (("activate", True), ("deactivate", False)):
        text = f"{name} a resource (a deactivated one is no longer offered nor bookable)"
        sub = command(resources, name, cmd_resource_active, text)
        sub.add_argument("slug")
        sub.set_defaults(active=active)

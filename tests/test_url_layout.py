"""The URL layout is read and written in one place (``caldav.paths``): a request path, Radicale's
sanitised path and an answer's href name the same place; hrefs are quoted whatever the names."""

from __future__ import annotations

import pytest

from caldav_bridge.caldav import paths


@pytest.mark.parametrize(
    "path", ["/alice/interactions/", "alice/interactions", "//alice//interactions"]
)
def test_every_form_of_a_path_names_the_same_place(path: str) -> None:
    place = paths.Place.of(path)
    assert place.parts == ("alice", "interactions")
    assert (place.home, place.child) == ("alice", paths.INTERACTIONS)
    assert place.made_by_server
    assert not place.is_principal


def test_schedule_boxes_directory_and_items_are_told_apart() -> None:
    assert paths.Place.of("/bob/inbox/").schedule_box == paths.INBOX
    assert paths.Place.of("/bob/outbox").schedule_box == paths.OUTBOX
    assert paths.Place.of("/bob/inbox/message.ics").schedule_box is None
    assert paths.Place.of("/bob/inbox/message.ics").in_schedule_box
    assert paths.Place.of("/bob/directory/x.vcf").in_directory
    assert paths.Place.of("/bob/").is_principal
    assert paths.Place.of("/bob/cal/x.ics").item() == ("/bob/cal/", "x.ics")
    assert paths.Place.of("/bob/cal/").item() is None
    assert not paths.Place.of("/bob/cal/").made_by_server
    assert paths.parent("/bob/cal/x.ics") == "/bob/cal/"
    assert paths.parent("/bob") == "/"


def test_hrefs_are_quoted_and_read_back() -> None:
    href = paths.href("", "ali ce", "caf&<é>%")
    assert href == "/ali%20ce/caf%26%3C%C3%A9%3E%25/"
    assert paths.of_url(f"http://host{href}") == ["ali ce", "caf&<é>%"]
    assert paths.collection_href("", "ali ce/caf&<é>%") == href

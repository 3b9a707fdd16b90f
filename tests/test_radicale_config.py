"""The example Radicale configuration loads the bridge's plugins."""

from __future__ import annotations

from pathlib import Path

from radicale import config

from caldav_bridge.caldav.app import BridgeApplication

EXAMPLE = Path(__file__).parent.parent / "config" / "radicale.conf"


def test_the_example_radicale_configuration_loads_the_sql_plugins(
    database_url: str, tmp_path: Path
) -> None:
    text = EXAMPLE.read_text().replace("database_url =", f"database_url = {database_url}")
    path = tmp_path / "radicale.conf"
    path.write_text(text)
    configuration = config.load([(str(path), False)])
    application = BridgeApplication(configuration)
    assert type(application._storage).__module__ == "plugins.radicale_bridge_storage"
    assert type(application._auth).__module__ == "plugins.radicale_bridge_auth"
    assert type(application._rights).__module__ == "plugins.radicale_bridge_rights"


def test_radicale_conditional_logging_options_do_not_stop_the_server_from_starting(
    world: object, database_url: str, tmp_path: Path
) -> None:
    """The start-up warm-up serves requests itself: they carry what Radicale's conditional
    logging reads of every request (it failed with KeyError 'method')."""
    text = EXAMPLE.read_text().replace("database_url =", f"database_url = {database_url}")
    text += (
        "\n[logging]\n"
        'request_header_on_notice_condition = {"method": {"match": "equal", "value": "GET"}}\n'
        'response_content_on_notice_condition = {"path": {"match": "endswith", "value": "/"}}\n'
    )
    path = tmp_path / "radicale.conf"
    path.write_text(text)
    application = BridgeApplication(config.load([(str(path), False)]))
    assert application._storage is not None

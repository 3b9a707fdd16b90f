"""The example Radicale configuration loads the bridge's plugins."""

from __future__ import annotations

from pathlib import Path

from radicale import config

from caldav_bridge.caldav_app import BridgeApplication

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

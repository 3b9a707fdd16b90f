"""Where the database URL comes from, in order: option, environment, file, default."""

from __future__ import annotations

from pathlib import Path

import pytest

from caldav_bridge.config import load_settings
from caldav_bridge.domain.errors import ConfigurationError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CALDAV_BRIDGE_DATABASE_URL", raising=False)
    monkeypatch.delenv("CALDAV_BRIDGE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bridge.conf"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_default_is_sqlite_in_the_users_data_directory(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{tmp_path}/data/caldav-bridge/caldav-bridge.sqlite3"
    assert settings.public_url == "http://127.0.0.1:5232"


def test_option_beats_environment_beats_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _config(
        tmp_path,
        "[database]\nurl = sqlite:///file.db\n[server]\npublic_url = https://crm.example/\n",
    )
    assert load_settings(config_path=path).database_url == "sqlite:///file.db"
    assert load_settings(config_path=path).public_url == "https://crm.example"
    monkeypatch.setenv("CALDAV_BRIDGE_DATABASE_URL", "postgresql://db/env")
    monkeypatch.setenv("CALDAV_BRIDGE_CONFIG", path)
    assert load_settings().database_url == "postgresql://db/env"
    assert load_settings("sqlite:///option.db").database_url == "sqlite:///option.db"


def test_the_example_configuration_reads_as_the_default() -> None:
    example = Path(__file__).parent.parent / "config" / "caldav-bridge.conf"
    assert load_settings(config_path=str(example)).database_url.startswith("sqlite:///")


def test_a_missing_or_malformed_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read configuration file"):
        load_settings(config_path=str(tmp_path / "absent.conf"))
    with pytest.raises(ConfigurationError, match="is malformed"):
        load_settings(config_path=_config(tmp_path, "url = no section\n"))

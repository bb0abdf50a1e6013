"""Bounds and the loopback rule (``loadtest.settings``)."""

from __future__ import annotations

import pytest

from verifier_client.cli import main
from verifier_client.studies.loadtest.settings import LoadSettings, LoadTestError, check_loopback


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8000",
                                 "http://[::1]:8000", "http://127.10.0.3", "http://LOCALHOST"])
def test_loopback_urls_are_accepted(url: str) -> None:
    host, port = check_loopback(url)
    assert host and port in (80, 8000)


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://server:8000",
                                 "http://0.0.0.0:8000", "http://example.com",
                                 "http://[2001:db8::1]:8000"])
def test_non_loopback_urls_are_refused(url: str) -> None:
    with pytest.raises(LoadTestError, match=r"not a loopback address.*--allow-remote"):
        check_loopback(url)
    assert check_loopback(url, allow_remote=True)[0]


def test_only_plain_http() -> None:
    with pytest.raises(LoadTestError, match="plain http:// only"):
        check_loopback("https://127.0.0.1:8443")


def test_cli_refuses_a_remote_server(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["loadtest", "--url", "http://192.0.2.7:8000", "--model", "m",
                 "--duration", "1", "--quiet"])
    assert code == 2
    assert "192.0.2.7 is not a loopback address" in capsys.readouterr().err


def test_settings_are_bounded() -> None:
    base = {"url": "http://127.0.0.1:1", "models": ("a",)}
    with pytest.raises(LoadTestError, match="limit is 3600 s"):
        LoadSettings(url=base["url"], models=("a", "b"), concurrency=(1, 2, 4, 8),
                     duration_s=600)  # 4 points x 2 models x 600 s
    with pytest.raises(LoadTestError, match="--poisson needs --rate"):
        LoadSettings(**base, concurrency=(1,), poisson=True)
    with pytest.raises(LoadTestError, match="one or two models"):
        LoadSettings(url=base["url"], models=("a", "b", "c"), concurrency=(1,))
    with pytest.raises(LoadTestError, match="concurrency must be in"):
        LoadSettings(**base, concurrency=(0,))
    with pytest.raises(LoadTestError, match="duration must be in"):
        LoadSettings(**base, concurrency=(1,), duration_s=601)

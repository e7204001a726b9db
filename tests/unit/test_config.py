from pathlib import Path

import pytest

from scaivault_pki.config import ConfigError, load_config


def test_defaults_live_in_the_data_dir(tmp_path):
    config = load_config(environ={"SCAIVAULT_PKI_DATA_DIR": str(tmp_path)})
    assert config.data_dir == tmp_path
    assert config.resolved_database_url == f"sqlite:///{tmp_path / 'scaivault-pki.db'}"
    assert config.resolved_pin_file == tmp_path / "hsm-pin"
    assert config.listen == "127.0.0.1:8200" and config.workers == 2
    assert config.softhsm_conf == tmp_path / "softhsm2.conf"


def test_systemd_state_directory_is_the_default(tmp_path):
    assert load_config(environ={"STATE_DIRECTORY": str(tmp_path)}).data_dir == tmp_path


def test_file_then_environment(tmp_path):
    (tmp_path / "config.toml").write_text(
        'listen = "0.0.0.0:9000"\nworkers = 4\npublic_base_url = "https://pki.example.com"\n'
        'pkcs11_module = "/opt/hsm/lib.so"\n'
    )
    config = load_config(environ={"SCAIVAULT_PKI_DATA_DIR": str(tmp_path), "SCAIVAULT_PKI_WORKERS": "3"})
    assert config.listen == "0.0.0.0:9000" and config.workers == 3
    assert config.public_base_url == "https://pki.example.com"
    assert not config.uses_softhsm and config.softhsm_conf is None


def test_explicit_file(tmp_path):
    path = tmp_path / "elsewhere.toml"
    path.write_text(f'data_dir = "{tmp_path / "d"}"\ndatabase_url = "postgresql://pki@db/pki"\n')
    config = load_config(path, environ={})
    assert config.data_dir == tmp_path / "d" and config.resolved_database_url == "postgresql://pki@db/pki"


@pytest.mark.parametrize(
    "content,env,message",
    [
        ("colour = 1\n", {}, "unknown setting"),
        ("workers = 'many'\n", {}, "workers"),
        ("workers = 0\n", {}, "at least 1"),
        ("listen = 8200\n", {}, "listen"),
        ("listen = '8200'\n", {}, "HOST:PORT"),
        ("this is not toml", {}, "config.toml"),
        ("", {"SCAIVAULT_PKI_WORKERS": "two"}, "workers"),
    ],
)
def test_bad_config_is_refused(tmp_path, content, env, message):
    (tmp_path / "config.toml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(environ={"SCAIVAULT_PKI_DATA_DIR": str(tmp_path), **env})


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_systemd_credential_wins_for_the_pin(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "hsm-pin").write_text("1234")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    config = load_config(environ={"SCAIVAULT_PKI_DATA_DIR": str(tmp_path)})
    assert config.resolved_pin_file == creds / "hsm-pin"


def test_challenge_listeners_are_off_unless_set(tmp_path):
    config = load_config(environ={"SCAIVAULT_PKI_DATA_DIR": str(tmp_path)})
    assert config.acme_http01_listen is None and config.acme_tls_alpn01_listen is None


def test_challenge_listeners_from_file_and_environment(tmp_path):
    (tmp_path / "config.toml").write_text('acme_http01_listen = "0.0.0.0:80"\nacme_tls_alpn01_listen = "[::]:443"\n')
    config = load_config(environ={"SCAIVAULT_PKI_DATA_DIR": str(tmp_path)})
    assert config.acme_http01_listen == "0.0.0.0:80" and config.acme_tls_alpn01_listen == "[::]:443"
    # The environment wins; empty switches a listener off.
    config = load_config(environ={"SCAIVAULT_PKI_DATA_DIR": str(tmp_path), "SCAIVAULT_PKI_ACME_HTTP01_LISTEN": "",
                                  "SCAIVAULT_PKI_ACME_TLS_ALPN01_LISTEN": "127.0.0.1:8443"})
    assert config.acme_http01_listen is None and config.acme_tls_alpn01_listen == "127.0.0.1:8443"


@pytest.mark.parametrize(
    "content,message",
    [
        ("acme_http01_listen = 80\n", "acme_http01_listen"),
        ("acme_http01_listen = '80'\n", "acme_http01_listen: must be HOST:PORT"),
        ("acme_tls_alpn01_listen = '0.0.0.0:0'\n", "acme_tls_alpn01_listen: must be HOST:PORT"),
        ("acme_tls_alpn01_listen = '0.0.0.0:65536'\n", "acme_tls_alpn01_listen: must be HOST:PORT"),
        ("acme_tls_alpn01_listen = '0.0.0.0:https'\n", "acme_tls_alpn01_listen: must be HOST:PORT"),
        ("acme_tls_alpn01_listen = '::1:443'\n", "needs brackets"),
        ("acme_http01_listen = '127.0.0.1:8200'\n", "acme_http01_listen and listen are the same address"),
        ("acme_http01_listen = '0.0.0.0:80'\nacme_tls_alpn01_listen = '0.0.0.0:80'\n",
         "acme_tls_alpn01_listen and acme_http01_listen are the same address"),
    ],
)
def test_bad_challenge_listener_is_refused(tmp_path, content, message):
    (tmp_path / "config.toml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(environ={"SCAIVAULT_PKI_DATA_DIR": str(tmp_path)})

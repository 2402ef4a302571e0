"""The credentials chain: each source, their order, key rotation, and the CVM instance role."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from trtc_exporter.api.credentials import (
    METADATA_URL,
    SOURCES,
    CredentialProvider,
    Credentials,
    CredentialsError,
    CvmRoleProvider,
    FileProvider,
    ProfileProvider,
    StaticProvider,
    resolve,
)
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import CredentialsConfig, parse_config
from trtc_exporter.secret import Secret

META = "http://metadata.test/latest/meta-data/cam/security-credentials/"
ROLE = "exporter-role"
NOW = 1_795_514_400.0


# -- helpers -----------------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def touch_later(*paths: Path) -> None:
    """Move mtime one second forward, as a rewrite on a coarse-mtime filesystem may not."""
    for path in paths:
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def keys(provider: CredentialProvider) -> tuple[str, str, str | None]:
    creds = provider.get()
    token = creds.token.reveal() if creds.token is not None else None
    return creds.secret_id.reveal(), creds.secret_key.reveal(), token


def profile(home: Path, text: str) -> Path:
    return write(home / ".tencentcloud" / "credentials", text)


FILE_ID, FILE_KEY = "AKIDfile1", "filekey1"


def key_files(tmp_path: Path, secret_id: str = FILE_ID, secret_key: str = FILE_KEY,
              token: str | None = None) -> CredentialsConfig:
    token_file = str(write(tmp_path / "token", token)) if token is not None else None
    return CredentialsConfig(str(write(tmp_path / "id", secret_id + "\n")),
                             str(write(tmp_path / "key", secret_key + "\n")), token_file)


ENV = {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": "envkey"}
PROFILE = "[default]\nsecret_id = AKIDprofile\nsecret_key = profilekey\n"


def role_doc(n: int = 1, expires: float = NOW + 3600, **extra: object) -> dict[str, object]:
    return {"Code": "Success", "TmpSecretId": f"AKIDtmp{n}", "TmpSecretKey": f"tmpkey{n}",
            "Token": f"token{n}", "ExpiredTime": int(expires),
            "Expiration": "2026-11-24T12:00:00Z", **extra}


@pytest.fixture
def metadata() -> Iterator[responses.RequestsMock]:
    """The metadata service, faked at the HTTP boundary; unregistered URLs fail to connect."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def serve_role(mock: responses.RequestsMock, doc: dict[str, object] | None = None) -> None:
    mock.upsert(responses.GET, META, body=ROLE + "\n")
    mock.upsert(responses.GET, META + ROLE, json=doc or role_doc())


def cvm(clock: FakeClock) -> CvmRoleProvider:
    return CvmRoleProvider(clock, base_url=META)


def chain(tmp_path: Path, creds: CredentialsConfig | None = None,
          env: dict[str, str] | None = None, clock: FakeClock | None = None) -> CredentialProvider:
    """resolve() isolated from this machine: no real home, no /etc profile, fake metadata URL."""
    return resolve(creds or CredentialsConfig(), env=env or {}, home=tmp_path / "home",
                   clock=clock or FakeClock(NOW), system_profile=None, metadata_url=META)


# -- each source -------------------------------------------------------------------------------

def test_files_source(tmp_path: Path) -> None:
    """Keys come from secret_id_file/secret_key_file, stripped of the trailing newline."""
    provider = chain(tmp_path, key_files(tmp_path))
    assert (provider.source, keys(provider), provider.refresh_failures) == (
        "file", ("AKIDfile1", "filekey1", None), 0)


def test_files_source_with_token(tmp_path: Path) -> None:
    """token_file supplies the session token of temporary keys."""
    provider = chain(tmp_path, key_files(tmp_path, token="tok-1\n"))
    assert keys(provider) == ("AKIDfile1", "filekey1", "tok-1")


def test_environment_source(tmp_path: Path) -> None:
    """TENCENTCLOUD_SECRET_ID/_SECRET_KEY/_SESSION_TOKEN are used, whitespace stripped."""
    env = {"TENCENTCLOUD_SECRET_ID": " AKIDenv ", "TENCENTCLOUD_SECRET_KEY": "envkey\n",
           "TENCENTCLOUD_SESSION_TOKEN": "envtoken"}
    provider = chain(tmp_path, env=env)
    assert (provider.source, keys(provider), provider.refresh_failures) == (
        "env", ("AKIDenv", "envkey", "envtoken"), 0)


def test_environment_without_token(tmp_path: Path) -> None:
    """Without TENCENTCLOUD_SESSION_TOKEN the credentials carry no token."""
    assert keys(chain(tmp_path, env=ENV)) == ("AKIDenv", "envkey", None)


def test_profile_source(tmp_path: Path) -> None:
    """The [default] section of ~/.tencentcloud/credentials is used."""
    profile(tmp_path / "home", PROFILE)
    provider = chain(tmp_path)
    assert (provider.source, keys(provider)) == ("profile", ("AKIDprofile", "profilekey", None))


def test_profile_section_from_environment(tmp_path: Path) -> None:
    """TENCENTCLOUD_PROFILE selects another section of the profile file."""
    profile(tmp_path / "home", PROFILE + "[prod]\nsecret_id = AKIDprod\nsecret_key = prodkey\n")
    provider = chain(tmp_path, env={"TENCENTCLOUD_PROFILE": "prod"})
    assert keys(provider) == ("AKIDprod", "prodkey", None)


def test_system_profile_when_home_lacks_the_section(tmp_path: Path) -> None:
    """The system-wide profile is read when the home profile has no such section."""
    profile(tmp_path / "home", "[other]\nsecret_id = a\nsecret_key = b\n")
    system = write(tmp_path / "etc" / "credentials", PROFILE)
    provider = resolve(CredentialsConfig(), env={}, home=tmp_path / "home",
                       system_profile=system)
    assert isinstance(provider, ProfileProvider) and provider.path == system


def test_broken_profile_is_an_error(tmp_path: Path) -> None:
    """A profile file that is not INI is reported, not silently skipped."""
    profile(tmp_path / "home", "secret_id = AKIDnoheader\n")
    with pytest.raises(CredentialsError, match="cannot parse profile file"):
        chain(tmp_path)


def test_profile_section_without_key_is_an_error(tmp_path: Path) -> None:
    """A profile section that lacks secret_key names the file and key, not a value."""
    profile(tmp_path / "home", "[default]\nsecret_id = AKIDprofile\n")
    with pytest.raises(CredentialsError, match=r"\[default\] secret_key is empty") as caught:
        chain(tmp_path)
    assert "AKIDprofile" not in str(caught.value)


def test_cvm_role_source(tmp_path: Path, metadata: responses.RequestsMock) -> None:
    """With cvm_role enabled and nothing else configured, the instance role supplies the keys."""
    serve_role(metadata)
    provider = chain(tmp_path, CredentialsConfig(cvm_role=True))
    assert (provider.source, keys(provider), provider.refresh_failures) == (
        "cvm_role", ("AKIDtmp1", "tmpkey1", "token1"), 0)


def test_static_provider_reports_no_failures() -> None:
    """A static provider (environment, demo) has source and refresh_failures like every other."""
    provider = StaticProvider(Credentials(Secret("a"), Secret("b")), "demo")
    assert (provider.source, provider.refresh_failures, keys(provider)) == ("demo", 0,
                                                                            ("a", "b", None))
    assert set(SOURCES) == {"file", "env", "profile", "cvm_role", "demo"}


# -- order -------------------------------------------------------------------------------------

def test_files_beat_environment(tmp_path: Path) -> None:
    """Configured key files win over the environment."""
    profile(tmp_path / "home", PROFILE)
    assert chain(tmp_path, key_files(tmp_path), env=ENV).source == "file"


def test_environment_beats_profile(tmp_path: Path) -> None:
    """The environment wins over the profile file."""
    profile(tmp_path / "home", PROFILE)
    assert chain(tmp_path, env=ENV).source == "env"


def test_profile_beats_cvm_role(tmp_path: Path, metadata: responses.RequestsMock) -> None:
    """The profile file wins over the CVM role, and the metadata service is not even asked."""
    serve_role(metadata)
    profile(tmp_path / "home", PROFILE)
    assert chain(tmp_path, CredentialsConfig(cvm_role=True)).source == "profile"
    assert len(metadata.calls) == 0


def test_cvm_role_is_not_probed_unless_enabled(tmp_path: Path,
                                               metadata: responses.RequestsMock) -> None:
    """Without cvm_role the chain ends without contacting the metadata service."""
    serve_role(metadata)
    with pytest.raises(CredentialsError):
        chain(tmp_path)
    assert len(metadata.calls) == 0


def test_nothing_found_is_a_helpful_error(tmp_path: Path) -> None:
    """With no source the error lists every option and where it looked, and no value."""
    env = {"TENCENTCLOUD_SECRET_ID": "AKIDhalfset", "TENCENTCLOUD_PROFILE": "prod"}
    with pytest.raises(CredentialsError) as caught:
        chain(tmp_path, env=env)
    message = str(caught.value)
    for part in ("api.credentials.secret_id_file", "TENCENTCLOUD_SECRET_KEY",
                 "TENCENTCLOUD_SECRET_ID is set but TENCENTCLOUD_SECRET_KEY is not",
                 "[prod]", str(tmp_path / "home" / ".tencentcloud" / "credentials"),
                 "api.credentials.cvm_role: true", "--demo"):
        assert part in message
    assert "AKIDhalfset" not in message


def test_cvm_role_failure_is_explained(tmp_path: Path, metadata: responses.RequestsMock) -> None:
    """When the CVM role is enabled but unreachable, the error says so after the other options."""
    with pytest.raises(CredentialsError, match="CVM role: metadata service unreachable"):
        chain(tmp_path, CredentialsConfig(cvm_role=True))


def test_resolve_keeps_its_call_signature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """resolve(config.api.credentials) and resolve(config) both work with only the config."""
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDenv")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "envkey")
    config = parse_config({})
    assert resolve(config.api.credentials).source == "env"
    assert resolve(config).source == "env"


def test_half_configured_files_are_an_error(tmp_path: Path) -> None:
    """secret_id_file without secret_key_file is refused even if built without validation."""
    with pytest.raises(CredentialsError, match="must be set together"):
        chain(tmp_path, CredentialsConfig(secret_id_file=str(write(tmp_path / "id", "x"))),
              env=ENV)


def test_missing_key_file_at_start_names_the_file(tmp_path: Path) -> None:
    """A configured key file that does not exist fails at start, naming the path."""
    creds = CredentialsConfig(str(write(tmp_path / "id", "AKIDx")), str(tmp_path / "nokey"))
    with pytest.raises(CredentialsError, match=r"cannot read credentials file .*nokey"):
        chain(tmp_path, creds)


def test_empty_key_file_at_start_is_an_error(tmp_path: Path) -> None:
    """A key file holding only whitespace fails at start."""
    creds = CredentialsConfig(str(write(tmp_path / "id", "AKIDx")),
                              str(write(tmp_path / "k", " \n")))
    with pytest.raises(CredentialsError, match=r"secret_key_file .* is empty"):
        chain(tmp_path, creds)


def test_nul_in_key_file_path_is_a_credentials_error(tmp_path: Path) -> None:
    """A key file path with a NUL byte is a CredentialsError, not a ValueError."""
    with pytest.raises(CredentialsError, match="invalid path"):
        FileProvider(write(tmp_path / "id", "AKIDx"), str(tmp_path / "key") + "\x00")


# -- rotation ----------------------------------------------------------------------------------

def test_rewritten_files_rotate_the_keys(tmp_path: Path) -> None:
    """After the key files are rewritten, the next get() returns the new keys."""
    key_files(tmp_path)
    provider = FileProvider(tmp_path / "id", tmp_path / "key")
    assert keys(provider)[0] == "AKIDfile1"
    write(tmp_path / "id", "AKIDfile2-longer\n")
    write(tmp_path / "key", "filekey2-longer\n")
    assert keys(provider) == ("AKIDfile2-longer", "filekey2-longer", None)
    assert provider.refresh_failures == 0


def test_equal_size_rewrite_with_new_mtime_is_noticed(tmp_path: Path) -> None:
    """A rotation to keys of the same length is picked up through the changed mtime."""
    key_files(tmp_path)
    provider = FileProvider(tmp_path / "id", tmp_path / "key")
    assert keys(provider)[:2] == ("AKIDfile1", "filekey1")
    write(tmp_path / "id", "AKIDfile2\n")
    write(tmp_path / "key", "filekey2\n")
    touch_later(tmp_path / "id", tmp_path / "key")
    assert keys(provider)[:2] == ("AKIDfile2", "filekey2")


def test_atomic_rename_rotation_is_noticed(tmp_path: Path) -> None:
    """Keys replaced by renaming a new file over the old one (as Kubernetes does) are loaded."""
    key_files(tmp_path)
    provider = FileProvider(tmp_path / "id", tmp_path / "key")
    keys(provider)
    os.replace(write(tmp_path / "new-key", "filekey9\n"), tmp_path / "key")
    assert keys(provider)[1] == "filekey9"


def test_deleted_file_keeps_the_old_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A failed re-read (file deleted) keeps the last keys, is counted once and logged safely."""
    key_files(tmp_path)
    provider = FileProvider(tmp_path / "id", tmp_path / "key")
    (tmp_path / "key").unlink()
    with caplog.at_level(logging.WARNING, logger="trtc_exporter.api.credentials"):
        assert keys(provider)[:2] == ("AKIDfile1", "filekey1")
        assert keys(provider)[:2] == ("AKIDfile1", "filekey1")
    assert provider.refresh_failures == 1
    assert "keeping the last keys" in caplog.text and "filekey1" not in caplog.text
    write(tmp_path / "key", "filekey3\n")
    assert keys(provider)[:2] == ("AKIDfile1", "filekey3")
    assert provider.refresh_failures == 1


def test_half_written_file_keeps_the_old_keys(tmp_path: Path) -> None:
    """An empty (half-written) key file keeps the last keys until a complete write lands."""
    key_files(tmp_path)
    provider = FileProvider(tmp_path / "id", tmp_path / "key")
    write(tmp_path / "key", "")
    assert keys(provider)[1] == "filekey1"
    assert provider.refresh_failures == 1
    write(tmp_path / "key", "filekey4\n")
    assert keys(provider)[1] == "filekey4"


def test_token_file_rotates_too(tmp_path: Path) -> None:
    """The token file is watched like the key files."""
    key_files(tmp_path, token="tok-1")
    provider = FileProvider(tmp_path / "id", tmp_path / "key", tmp_path / "token")
    write(tmp_path / "token", "tok-22")
    assert keys(provider)[2] == "tok-22"


def test_profile_file_rotates(tmp_path: Path) -> None:
    """A rewritten profile file is re-read on the next get()."""
    path = profile(tmp_path, PROFILE)
    provider = ProfileProvider(path)
    write(path, PROFILE.replace("profilekey", "profilekez"))
    touch_later(path)
    assert keys(provider)[1] == "profilekez"


def test_reload_rereads_the_files(tmp_path: Path) -> None:
    """Resolving again (what a config reload does) reads the files afresh."""
    creds = key_files(tmp_path)
    assert keys(chain(tmp_path, creds))[0] == "AKIDfile1"
    write(tmp_path / "id", "AKIDfile5\n")
    assert keys(chain(tmp_path, creds))[0] == "AKIDfile5"


# -- CVM instance role -------------------------------------------------------------------------

def test_cvm_role_fetches_role_then_keys(metadata: responses.RequestsMock) -> None:
    """The provider asks for the role name, then the role's keys, with a 1 s timeout."""
    serve_role(metadata)
    provider = cvm(FakeClock(NOW))
    assert keys(provider) == ("AKIDtmp1", "tmpkey1", "token1")
    assert (provider.role, provider.expires_at) == (ROLE, NOW + 3600)
    assert [c.request.url for c in metadata.calls] == [META, META + ROLE]
    assert all(c.request.req_kwargs["timeout"] == 1.0 for c in metadata.calls)


def test_default_metadata_url() -> None:
    """The default metadata endpoint is Tencent Cloud's CAM security-credentials path."""
    assert METADATA_URL == ("http://metadata.tencentyun.com/latest/meta-data/cam/"
                            "security-credentials/")


def test_cvm_role_refreshes_before_expiry(metadata: responses.RequestsMock) -> None:
    """Keys are reused until 300 s before expiry, then fetched anew."""
    serve_role(metadata)
    clock = FakeClock(NOW)
    provider = cvm(clock)
    serve_role(metadata, role_doc(2, expires=NOW + 7200))
    clock.advance(3600 - 301)
    assert keys(provider)[0] == "AKIDtmp1"
    assert len(metadata.calls) == 2
    clock.advance(1)
    assert keys(provider) == ("AKIDtmp2", "tmpkey2", "token2")
    assert (len(metadata.calls), provider.expires_at, provider.refresh_failures) == (
        3, NOW + 7200, 0)  # the role name is remembered


def test_cvm_refresh_failure_keeps_the_old_keys(metadata: responses.RequestsMock,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A failed refresh keeps the current keys, counts, logs without secrets and never raises."""
    serve_role(metadata)
    clock = FakeClock(NOW)
    provider = cvm(clock)
    metadata.upsert(responses.GET, META + ROLE, status=500)
    clock.advance(3400)
    with caplog.at_level(logging.WARNING, logger="trtc_exporter.api.credentials"):
        assert keys(provider) == ("AKIDtmp1", "tmpkey1", "token1")
    assert provider.refresh_failures == 1
    assert "refresh failed" in caplog.text and "HTTP 500" in caplog.text
    assert "tmpkey1" not in caplog.text and "token1" not in caplog.text
    clock.advance(400)  # past expiry: still the old keys, still no exception
    assert keys(provider)[0] == "AKIDtmp1"
    assert provider.refresh_failures == 2


def test_cvm_refresh_failures_are_spaced(metadata: responses.RequestsMock) -> None:
    """After a failed refresh the next attempt waits the retry interval, not every get()."""
    serve_role(metadata)
    clock = FakeClock(NOW)
    provider = cvm(clock)
    metadata.upsert(responses.GET, META + ROLE, status=500)
    clock.advance(3400)
    for _ in range(5):
        provider.get()
    assert provider.refresh_failures == 1
    serve_role(metadata, role_doc(3, expires=NOW + 9000))
    clock.advance(10)
    assert keys(provider)[0] == "AKIDtmp3"
    assert provider.refresh_failures == 1


def test_cvm_refresh_asks_for_the_role_again_after_a_failure(
        metadata: responses.RequestsMock) -> None:
    """A failed refresh forgets the role name, so a replaced instance role is discovered."""
    serve_role(metadata)
    clock = FakeClock(NOW)
    provider = cvm(clock)
    metadata.upsert(responses.GET, META + ROLE, status=404)
    clock.advance(3400)
    provider.get()
    metadata.upsert(responses.GET, META, body="new-role")
    metadata.upsert(responses.GET, META + "new-role", json=role_doc(4, expires=NOW + 9000))
    clock.advance(10)
    assert keys(provider)[0] == "AKIDtmp4" and provider.role == "new-role"


@pytest.mark.parametrize(("doc", "message"), [
    ({**role_doc(), "Code": "Failed"}, "returned Code 'Failed'"),
    ({k: v for k, v in role_doc().items() if k != "Token"}, "lacks Token"),
    ({**role_doc(), "TmpSecretKey": ""}, "lacks TmpSecretKey"),
    ({**role_doc(), "ExpiredTime": "soon"}, "lacks ExpiredTime"),
    ({**role_doc(), "ExpiredTime": 10**400}, "lacks ExpiredTime"),
    (["not", "a", "mapping"], "returned Code null"),
])
def test_cvm_bad_answers_fail_at_start(metadata: responses.RequestsMock, doc: object,
                                       message: str) -> None:
    """A malformed role answer is a CredentialsError that names the problem, not the keys."""
    metadata.upsert(responses.GET, META, body=ROLE)
    metadata.upsert(responses.GET, META + ROLE, json=doc)
    with pytest.raises(CredentialsError, match=message) as caught:
        cvm(FakeClock(NOW))
    assert "tmpkey1" not in str(caught.value) and "token1" not in str(caught.value)


def test_cvm_transport_failures_fail_at_start(metadata: responses.RequestsMock) -> None:
    """No answer, an HTTP error, a non-JSON body or an empty role name each raise at start."""
    with pytest.raises(CredentialsError, match="unreachable asking for the role name"):
        cvm(FakeClock(NOW))
    metadata.upsert(responses.GET, META, status=404)
    with pytest.raises(CredentialsError, match="HTTP 404 for the role name"):
        cvm(FakeClock(NOW))
    metadata.upsert(responses.GET, META, body="  \n")
    with pytest.raises(CredentialsError, match="names no CAM role"):
        cvm(FakeClock(NOW))
    metadata.upsert(responses.GET, META, body=ROLE)
    metadata.upsert(responses.GET, META + ROLE, body="<html>")
    with pytest.raises(CredentialsError, match="is not JSON"):
        cvm(FakeClock(NOW))

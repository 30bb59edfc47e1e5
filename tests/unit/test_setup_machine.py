"""scripts/setup-machine.sh: finding Debian's archive in apt's sources, checking the
unpacked Consul, and the policy-rc.d it adds around installs. The script runs for
real, with apt-get, dpkg-query, dpkg-deb, dockerd and id replaced by shims on
PATH and its apt directory and policy-rc.d path moved into a temp directory, so
nothing on the machine is installed or changed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "setup-machine.sh"
LIB = ROOT / "scripts" / "setup-machine-lib.sh"
SIGNED = "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"

SHIMS = {
    "id": '[ "$1" = -u ] && echo 0 && exit 0\nexec /usr/bin/id "$@"\n',
    "dpkg-query": '[ -n "$FAKE_ALL_INSTALLED" ] && printf "install ok installed"\nexit 0\n',
    "apt-get": """echo "apt-get $*" >> "$FAKE_LOG"
for arg in "$@"; do
  case "$arg" in Dir::Etc::SourceList=*) cat "${arg#Dir::Etc::SourceList=}" >> "$FAKE_LOG";; esac
done
case " $* " in
  *" install "*)
    [ -e "$SWARMOP_SETUP_POLICY_RC_D" ] && echo "policy-rc.d present" >> "$FAKE_LOG"
    exit "${FAKE_INSTALL_EXIT:-0}";;
  *" download "*)
    for last; do :; done
    touch "${last}_1.0_amd64.deb";;
esac
exit 0
""",
    "dpkg-deb": """deb=$2 target=$3
case "$deb" in
  *consul_*) mkdir -p "$target/usr/bin"
    printf '#!/bin/sh\\necho "Consul v${FAKE_CONSUL_VERSION:-1.8.7}"\\necho "Revision 1"\\n' \\
      > "$target/usr/bin/consul"
    chmod +x "$target/usr/bin/consul";;
  *) exit 1;;
esac
""",
    "dockerd": 'echo "Docker version 20.10.24+dfsg1, build 297e128"\n',
}


def _executable(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _fake_consul(tools: Path, version_output: str, status: int = 0) -> None:
    body = f"printf '%s\\n' '{version_output}'\nexit {status}\n"
    _executable(tools / "consul/usr/bin/consul", body)


class Machine:
    """A temp directory standing in for the machine the script sets up."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.apt = root / "etc-apt"
        (self.apt / "sources.list.d").mkdir(parents=True)
        self.tools = root / "tools"
        self.policy = root / "policy-rc.d"
        self.log = root / "calls.log"
        self.log.touch()
        for name, body in SHIMS.items():
            _executable(root / "bin" / name, body)
        _executable(self.tools / "nginx/usr/sbin/nginx", "echo 'nginx version: nginx/1.22.1' >&2\n")
        self.env = {
            **os.environ,
            "PATH": f"{root / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "SWARMOP_TOOLS": str(self.tools),
            "SWARMOP_SETUP_APT_DIR": str(self.apt),
            "SWARMOP_SETUP_POLICY_RC_D": str(self.policy),
            "FAKE_LOG": str(self.log),
        }

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT)],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def _uri(apt: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", '. "$0"; debian_archive_uri "$1"', str(LIB), str(apt)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# -- debian_archive_uri ----------------------------------------------------------------


def test_deb822_sources_skip_security_disabled_and_source_only_stanzas(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "URIs: http://deb.example.org/debian-security\n"
        "Suites: bookworm-security\n\n"
        "Types: deb-src\n"
        "URIs: http://src.example.org/debian\n\n"
        "Types: deb\n"
        "Enabled: no\n"
        "URIs: http://off.example.org/debian\n\n"
        "Types: deb\n"
        "# http://commented.example.org/debian\n"
        "URIs: http://mirror.example.org/debian/ http://second.example.org/debian\n"
        "Suites: bookworm\n"
    )
    result = _uri(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "http://mirror.example.org/debian\n"


def test_one_line_deb_entries_of_sources_list_are_read(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example.org/debian bookworm main\n"
        "deb-src http://src.example.org/debian bookworm main\n"
        "deb http://security.example.org/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://list.example.org/debian"
        " bookworm main\n"
    )
    result = _uri(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "http://list.example.org/debian\n"


def test_list_files_in_sources_list_d_are_read_and_other_files_ignored(tmp_path: Path) -> None:
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "old.list.disabled").write_text("deb http://disabled.example.org/debian x main\n")
    (parts / "other.sources.bak").write_text("Types: deb\nURIs: http://bak.example.org/debian\n")
    (parts / "vendor.list").write_text("deb http://apt.vendor.example.com/stable x main\n")
    (parts / "debian.list").write_text("deb http://parts.example.org/debian bookworm main\n")
    result = _uri(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "http://parts.example.org/debian\n"


def test_no_debian_source_fails_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://apt.vendor.example.com/stable x main\n")
    result = _uri(tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"setup: no Debian archive URI in {tmp_path}" in result.stderr


# -- the script ------------------------------------------------------------------------


def test_a_failed_install_exits_and_removes_the_policy_it_added(machine: Machine) -> None:
    result = machine.run(FAKE_INSTALL_EXIT="100")
    assert result.returncode == 1
    assert "apt-get install docker.io busybox-static" in result.stderr
    assert "policy-rc.d present" in machine.log.read_text(), "installs run with the policy"
    assert not machine.policy.exists(), "the policy-rc.d the script added is left behind"


def test_a_policy_the_script_did_not_add_is_kept(machine: Machine) -> None:
    machine.policy.write_text("#!/bin/sh\nexit 101 # the machine's own\n")
    result = machine.run(FAKE_INSTALL_EXIT="100")
    assert result.returncode == 1
    assert machine.policy.read_text() == "#!/bin/sh\nexit 101 # the machine's own\n"


def test_consul_is_fetched_from_the_machines_debian_archive_and_checked(
    machine: Machine,
) -> None:
    (machine.apt / "sources.list").write_text(
        "deb http://mirror.example.org/debian bookworm main\n"
    )
    result = machine.run()
    assert result.returncode == 0, result.stderr
    assert not machine.policy.exists()
    calls = machine.log.read_text()
    assert f"deb {SIGNED} http://mirror.example.org/debian bullseye main" in calls
    assert "download -qq consul" in calls
    assert result.stdout.splitlines()[-1] == (
        "setup: machine ready: docker 20.10.24+dfsg1, consul 1.8.7, nginx 1.22.1"
    )
    # Idempotent: everything is there now, so a second run installs and fetches nothing.
    machine.log.write_text("")
    again = machine.run(FAKE_ALL_INSTALLED="1")
    assert again.returncode == 0, again.stderr
    assert machine.log.read_text() == ""


def test_no_debian_uri_stops_the_script_before_apt_runs(machine: Machine) -> None:
    result = machine.run(FAKE_ALL_INSTALLED="1")
    assert result.returncode == 1
    assert "setup: no Debian archive URI in" in result.stderr
    assert machine.log.read_text() == "", "apt-get ran without a source"
    assert "machine ready" not in result.stdout


@pytest.mark.parametrize(
    ("output", "status", "message"),
    [
        ("Consul v1.9.3", 0, "holds Consul 1.9.3, but the sandbox needs Consul 1.8.x"),
        ("Consul v1.8.7", 1, "does not run"),
        ("consul: command not found", 0, "is not Consul"),
    ],
)
def test_a_wrong_or_broken_consul_is_refused(
    machine: Machine, output: str, status: int, message: str
) -> None:
    _fake_consul(machine.tools, output, status)
    result = machine.run(FAKE_ALL_INSTALLED="1")
    assert result.returncode == 1
    assert message in result.stderr
    assert "machine ready" not in result.stdout


def test_another_consul_1_8_release_is_accepted_with_a_warning(machine: Machine) -> None:
    _fake_consul(machine.tools, "Consul v1.8.5")
    result = machine.run(FAKE_ALL_INSTALLED="1")
    assert result.returncode == 0, result.stderr
    assert "warning:" in result.stderr and "Consul 1.8.5, not 1.8.7" in result.stderr
    assert "consul 1.8.5" in result.stdout

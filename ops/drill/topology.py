"""The drill's topology on one machine: etcd, three Patroni-managed PostgreSQL nodes (run as the
`postgres` user, each with its own port and data directory), a pgBackRest repository and two
Teeka servers that follow the primary through a multi-host connection string.

Everything lives under one temporary directory and every process is started in its own
session, so `Topology.cleanup()` can end them all (and remove the directory) even after a
failure.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "ops" / "templates"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# Patroni >= 4.1 from PyPI in its own virtualenv (`make drill` installs it); Debian 12's 3.0.2
# has no quorum commit and gaps in strict mode (docs/decisions/0001-patroni-3-sync-mode.md).
PATRONI = Path("/opt/teeka-drill/venv/bin/patroni")  # `make drill` builds it
PATRONI_MIN = (4, 1)
# Roles of a synchronous standby in GET /cluster: `sync_standby` (synchronous_mode: on) or
# `quorum_standby` (synchronous_mode: quorum); a replica's state is `streaming` (Patroni >= 3.0.4)
# or `running` (older).
SYNC_ROLES = ("sync_standby", "quorum_standby")
UP_STATES = ("running", "streaming")
SCOPE = "teeka-drill"
STANZA = "teeka"
DB_NAME = "teeka"
APP_USER = "teeka"
HOST = "127.0.0.1"
PG_HBA = ("local all all trust", f"host all all {HOST}/32 trust",
          f"host replication replicator {HOST}/32 trust")


@dataclass(frozen=True)
class Ports:
    """All the drill's ports from one base (default 15400), away from the machine's 5432."""

    base: int = 15400

    @property
    def etcd_client(self) -> int:
        return self.base + 79

    @property
    def etcd_peer(self) -> int:
        return self.base + 80

    def pg(self, i: int) -> int:
        return self.base + 32 + i  # 15433, 15434, 15435

    def rest(self, i: int) -> int:
        return self.base + 8 + i  # 15409 …

    def teeka(self, i: int) -> int:
        return self.base + 81 + i  # 15482, 15483

    @property
    def restore_pg(self) -> int:
        return self.base + 39


def multi_host_url(hosts: list[tuple[str, int]], *, user: str, database: str) -> str:
    """SQLAlchemy URL for asyncpg that tries each host and settles on the read-write one."""
    query = "&".join(f"host={h}:{p}" for h, p in hosts)
    return f"postgresql+asyncpg://{user}@/{database}?{query}&target_session_attrs=read-write"


def render(template: str, **values: object) -> str:
    return Template((TEMPLATES / template).read_text()).substitute(
        {k: str(v) for k, v in values.items()})


def _http_json(url: str, timeout: float = 2.0) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (local URL)
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (OSError, ValueError):
        return 0, None


@dataclass
class Node:
    index: int
    name: str
    dir: Path
    pg_port: int
    rest_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "run"

    @property
    def config(self) -> Path:
        return self.dir / "patroni.yml"

    @property
    def backrest_conf(self) -> Path:
        return self.dir / "pgbackrest.conf"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def rest(self, path: str) -> tuple[int, object]:
        return _http_json(f"http://{HOST}:{self.rest_port}{path}")


@dataclass
class Topology:
    ports: Ports = field(default_factory=Ports)
    ttl: int = 10
    loop_wait: int = 2
    retry_timeout: int = 4
    patroni: Path = PATRONI
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="teeka-drill-")))
    nodes: list[Node] = field(default_factory=list)
    etcd: subprocess.Popen[bytes] | None = None
    teeka: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.chmod(0o755)
        self.password = secrets.token_hex(12)  # pg_hba trusts loopback; set all the same
        pg = pwd.getpwnam("postgres")
        self._uid, self._gid = pg.pw_uid, pg.pw_gid
        self.logs = self.workdir / "logs"
        self.logs.mkdir()
        self.backrest = self.workdir / "backrest"
        for sub in ("repo", "log", "lock"):
            (self.backrest / sub).mkdir(parents=True)
        for i in (1, 2, 3):
            node = Node(i, f"pg{i}", self.workdir / f"pg{i}", self.ports.pg(i), self.ports.rest(i))
            node.socket_dir.mkdir(parents=True)
            self.nodes.append(node)
        self._write_configs()
        for path in [self.backrest, *(n.dir for n in self.nodes)]:
            self._chown_tree(path)
        self.secret = os.urandom(16).hex()
        self.teeka_data = self.workdir / "teeka"
        self.teeka_data.mkdir()

    # ------------------------------------------------------------------ configuration

    def _chown_tree(self, path: Path) -> None:
        for p in [path, *path.rglob("*")]:
            os.chown(p, self._uid, self._gid)

    def _write_configs(self) -> None:
        hba = "\n".join(f"    - {line}" for line in PG_HBA)
        for n in self.nodes:
            n.config.write_text(render(
                "patroni.yml", scope=SCOPE, name=n.name, host=HOST, rest_port=n.rest_port,
                etcd_hosts=f"{HOST}:{self.ports.etcd_client}", ttl=self.ttl,
                loop_wait=self.loop_wait, retry_timeout=self.retry_timeout, pg_hba=hba,
                pg_port=n.pg_port, data_dir=n.data_dir, bin_dir=PG_BIN, node_dir=n.dir,
                superuser_password=self.password, replication_password=self.password,
                socket_dir=n.socket_dir, pgbackrest_conf=n.backrest_conf, stanza=STANZA))
            n.backrest_conf.write_text(self.backrest_config(n.data_dir, n.pg_port, n.socket_dir))

    def backrest_config(self, data_dir: Path, port: int, socket_dir: Path) -> str:
        return render("pgbackrest.conf", repo_path=self.backrest / "repo",
                      log_path=self.backrest / "log", lock_path=self.backrest / "lock",
                      stanza=STANZA, data_dir=data_dir, pg_port=port, socket_dir=socket_dir)

    def app_url(self) -> str:
        return multi_host_url([(HOST, n.pg_port) for n in self.nodes], user=APP_USER,
                              database=DB_NAME)

    # ------------------------------------------------------------------ processes

    def _popen(self, args: list[str], log: str, *, as_postgres: bool = False,
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = open(self.logs / log, "ab")
        who: dict[str, int | None] = {"user": None, "group": None}
        if as_postgres:
            who = {"user": self._uid, "group": self._gid}
        proc: subprocess.Popen[bytes] = subprocess.Popen(  # noqa: S603
            args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=env or os.environ.copy(), user=who["user"], group=who["group"],
            extra_groups=[] if as_postgres else None,
            cwd=str(self.workdir) if as_postgres else None)
        out.close()
        return proc

    def run_as_postgres(self, args: list[str], *, timeout: float = 300,
                        check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, user=self._uid, group=self._gid, extra_groups=[],  # noqa: S603
                              cwd=str(self.workdir), capture_output=True, text=True,
                              timeout=timeout, check=check)

    def start_etcd(self) -> None:
        data = self.workdir / "etcd"
        data.mkdir(exist_ok=True)
        client = f"http://{HOST}:{self.ports.etcd_client}"
        peer = f"http://{HOST}:{self.ports.etcd_peer}"
        self.etcd = self._popen([
            "etcd", "--name", "drill", "--data-dir", str(data),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"drill={peer}", "--initial-cluster-state", "new",
            "--heartbeat-interval", "100", "--election-timeout", "1000"], "etcd.log")
        wait_for(lambda: _http_json(f"{client}/health")[0] == 200, 30, "etcd to answer")

    def patroni_version(self) -> tuple[int, ...]:
        """The version of the Patroni the drill runs (`patroni --version`: "patroni 4.1.5"),
        asked as the postgres user, who must be able to run it and its interpreter."""
        return parse_version(self.run_as_postgres([str(self.patroni), "--version"],
                                                  timeout=60).stdout)

    def start_node(self, node: Node) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(node.dir),
               "LC_ALL": "C.UTF-8"}
        node.proc = self._popen([str(self.patroni), str(node.config)], f"{node.name}.log",
                                as_postgres=True, env=env)

    def kill_node(self, node: Node) -> None:
        """A machine lost at once: SIGKILL to Patroni, the postmaster and every backend."""
        pids: list[int] = []
        if node.proc is not None and node.proc.poll() is None:
            pids.append(node.proc.pid)
        pm = node.postmaster_pid()
        if pm:
            pids.append(pm)
            pids += children(pm)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if node.proc is not None:
            try:
                os.killpg(node.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            node.proc.wait(timeout=10)
            node.proc = None

    def cluster(self) -> list[dict[str, object]]:
        """Patroni's view of the members (from any node that answers)."""
        for n in self.nodes:
            status, body = n.rest("/cluster")
            if status == 200 and isinstance(body, dict):
                members = body.get("members")
                if isinstance(members, list):
                    return members
        return []

    def leader(self) -> Node | None:
        for m in self.cluster():
            if m.get("role") == "leader" and m.get("state") == "running":
                return self.node(str(m["name"]))
        return None

    def sync_standbys(self) -> list[Node]:
        return [self.node(str(m["name"])) for m in self.cluster()
                if m.get("role") in SYNC_ROLES and m.get("state") in UP_STATES]

    def streaming(self) -> list[Node]:
        return [self.node(str(m["name"])) for m in self.cluster()
                if m.get("role") in ("replica", *SYNC_ROLES)
                and m.get("state") in UP_STATES]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def start_teeka(self, i: int, env: dict[str, str]) -> None:
        port = self.ports.teeka(i)
        self.teeka[i] = self._popen(
            [str(ROOT / ".venv" / "bin" / "teeka"), "serve", "--host", HOST, "--port", str(port)],
            f"teeka{i}.log", env=env)
        wait_for(lambda: _http_json(f"http://{HOST}:{port}/api/v1/sessions?district_id=109")[0]
                 in (200, 503), 60, f"teeka {i} to answer")

    def kill_teeka(self, i: int) -> None:
        proc = self.teeka.pop(i)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def cleanup(self, keep: bool = False) -> None:
        """End every process the drill started, then remove the working directory."""
        procs = [*self.teeka.values(), *(n.proc for n in self.nodes if n.proc), *self.others]
        for proc in procs:
            _killpg(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _killpg(proc, signal.SIGKILL)
        for data in [*(n.data_dir for n in self.nodes), self.workdir / "restore" / "data"]:
            pm = _pid_in(data)
            if pm:
                for pid in [pm, *children(pm)]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        if self.etcd is not None:
            _killpg(self.etcd, signal.SIGKILL)
            self.etcd.wait(timeout=10)
        if not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def parse_version(text: str) -> tuple[int, ...]:
    """(4, 1, 5) from "patroni 4.1.5"."""
    word = text.split()[-1] if text.split() else ""
    return tuple(int(p) for p in word.split(".") if p.isdigit())


def _pid_in(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _killpg(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def children(pid: int) -> list[int]:
    """Direct children of a process (the backends of a postmaster), from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def wait_for(check: object, timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")

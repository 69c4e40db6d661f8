"""Pure helpers of the failover drill (ops/drill): no processes, no database."""

from __future__ import annotations

import os
from datetime import date

import httpx
import yaml
from ops.drill.drill import result_line
from ops.drill.load import age_fits, retry_delay
from ops.drill.topology import Ports, children, multi_host_url, render


def test_multi_host_url_lists_every_node_and_asks_for_the_primary() -> None:
    from sqlalchemy.engine import make_url

    url = multi_host_url([("10.0.1.5", 5432), ("10.0.2.5", 5432)], user="teeka",
                         database="teeka")
    parsed = make_url(url)
    assert parsed.drivername == "postgresql+asyncpg"
    assert parsed.query["host"] == ("10.0.1.5:5432", "10.0.2.5:5432")
    assert parsed.query["target_session_attrs"] == "read-write"


def test_the_last_line_says_pass_or_fail_with_figures() -> None:
    assert result_line(passed=True, lost=0, oversell=0, recovery_s=12.2) == \
        "drill: PASS lost_acks=0 oversell=0 recovery_s=13"
    assert result_line(passed=False, lost=2, oversell=0, recovery_s=None,
                       failing="kill-primary") == \
        "drill: FAIL lost_acks=2 oversell=0 recovery_s=none step=kill-primary"


def test_patroni_template_renders_strict_quorum_commit_with_sane_timing() -> None:
    text = render("patroni.yml", scope="s", name="pg1", host="127.0.0.1", rest_port=8008,
                  etcd_hosts="127.0.0.1:2379", ttl=10, loop_wait=2, retry_timeout=4,
                  pg_hba="    - local all all trust", pg_port=5432, data_dir="/d",
                  bin_dir="/b", node_dir="/n", superuser_password="x",
                  replication_password="y", socket_dir="/r", pgbackrest_conf="/c",
                  stanza="teeka")
    conf = yaml.safe_load(text)
    dcs = conf["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] == "quorum" and dcs["synchronous_mode_strict"] is True
    assert dcs["synchronous_node_count"] == 1
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    assert dcs["postgresql"]["parameters"]["synchronous_commit"] == "on"
    assert "archive-push" in conf["postgresql"]["parameters"]["archive_command"]


def test_ports_stay_clear_of_the_machines_postgresql() -> None:
    ports = Ports(15400)
    used = [ports.etcd_client, ports.etcd_peer, ports.restore_pg,
            *(ports.pg(i) for i in (1, 2, 3)), *(ports.rest(i) for i in (1, 2, 3)),
            *(ports.teeka(i) for i in (1, 2))]
    assert len(set(used)) == len(used) and 5432 not in used


def test_age_fits_the_session_band() -> None:
    day = date(2026, 6, 1)
    assert age_fits(1990, day, 18, 44) and not age_fits(1990, day, 45, None)
    assert age_fits(1960, day, 45, None)


def test_retry_delay_follows_retry_after_within_bounds() -> None:
    busy = httpx.Response(503, headers={"Retry-After": "2"})
    assert retry_delay(busy, 0) == 2.0
    assert retry_delay(httpx.Response(503, headers={"Retry-After": "60"}), 0) == 3.0
    assert retry_delay(None, 0) == 0.25 and retry_delay(None, 10) == 2.0


def test_children_finds_a_child_process() -> None:
    import subprocess

    child = subprocess.Popen(["sleep", "5"])
    try:
        assert child.pid in children(os.getpid())
    finally:
        child.kill()
        child.wait()

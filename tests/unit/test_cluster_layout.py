"""How deploy/cluster lays out its three nodes (no JVM started): one cluster id, every node a voter,
3 replicas with min.insync.replicas 2, ports recorded with the home; the single broker unchanged."""

import pytest

from contracts.topics import PARTITIONS
from deploy.cluster import LocalCluster
from deploy.kafka.local import LocalKafka

PORTS, CONTROLLERS = [19791, 19792, 19793], [19794, 19795, 19796]


def test_every_node_is_a_voter_with_three_replicas_and_two_in_sync(tmp_path) -> None:
    cluster = LocalCluster(tmp_path, ports=PORTS, controller_ports=CONTROLLERS)
    voters = "1@127.0.0.1:19794,2@127.0.0.1:19795,3@127.0.0.1:19796"
    for node_id, node in enumerate(cluster.nodes, start=1):
        config = node.server_properties()
        assert (config["node.id"], config["controller.quorum.voters"]) == (str(node_id), voters)
        assert config["listeners"].startswith(f"SASL_PLAINTEXT://127.0.0.1:{PORTS[node_id - 1]},")
        assert [config[k] for k in ("default.replication.factor", "offsets.topic.replication.factor", "transaction.state.log.replication.factor")] == ["3"] * 3
        assert config["min.insync.replicas"] == config["transaction.state.log.min.isr"] == "2"
        assert config["num.partitions"] == str(PARTITIONS)
        assert node.cluster_id == cluster.cluster_id and node.home == tmp_path / f"node-{node_id}"
    assert cluster.bootstrap_servers == "127.0.0.1:19791,127.0.0.1:19792,127.0.0.1:19793"


def test_a_home_keeps_its_cluster_id_ports_and_controller_login(tmp_path) -> None:
    first = LocalCluster(tmp_path, ports=PORTS, controller_ports=CONTROLLERS)
    first._prepare()
    again = LocalCluster(tmp_path)  # as `python -m deploy.cluster stop-node 2` would, later, without ports
    again._prepare()
    assert (again.cluster_id, again.ports, again.controller_ports) == (first.cluster_id, PORTS, CONTROLLERS)
    assert {node.controller_secret for node in again.nodes} == {first.nodes[0].controller_secret}
    assert (tmp_path / "controller.secret").stat().st_mode & 0o777 == 0o600


def test_ports_must_be_three_and_distinct(tmp_path) -> None:
    with pytest.raises(ValueError, match="3 client ports and 3 controller ports"):
        LocalCluster(tmp_path, ports=[19791, 19792, 19791], controller_ports=CONTROLLERS)


def test_the_single_broker_is_one_voter_with_one_replica(tmp_path) -> None:
    config = LocalKafka(home=tmp_path, port=19797, controller_port=19798).server_properties()
    assert config["controller.quorum.voters"] == "1@127.0.0.1:19798"
    assert config["default.replication.factor"] == config["min.insync.replicas"] == "1"

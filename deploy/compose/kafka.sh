#!/usr/bin/env bash
# The compose file's broker on the apache/kafka image: one KRaft node (broker and controller), the
# same logins as deploy/kafka's (SCRAM-SHA-512 users created when its volume is first formatted,
# passwords from the environment), the standard authorizer; its ACLs come from kafka-acls.sh.
set -euo pipefail
config=/tmp/server.properties
users=(admin membership events travel finance notifications portal)  # deploy/kafka/principals.py

password() {  # <NAME>_KAFKA_SASL_PASSWORD, else the local stack's
  local variable="${1^^}_KAFKA_SASL_PASSWORD"
  if [[ $1 == admin ]]; then echo "${!variable:-icc-local-admin}"; else echo "${!variable:-icc-local-$1}"; fi
}

cat > "$config" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
# The controller listens on the container's loopback only: nobody else can reach it.
listeners=SASL_PLAINTEXT://:9092,CONTROLLER://localhost:9093
advertised.listeners=SASL_PLAINTEXT://kafka:9092
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(password admin)";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
# ANONYMOUS: the broker on its own (loopback-only, PLAINTEXT) controller listener; never a client.
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
log.dirs=/var/lib/kafka/data
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPERTIES

scram=()
for user in "${users[@]}"; do
  scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(password "$user")]")
done
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "${CLUSTER_ID:-I1DG-kvuTKq9bGtkpfXELA}" \
  --config "$config" --feature share.version=0 "${scram[@]}" > /dev/null  # it would print the users' salted keys
exec /opt/kafka/bin/kafka-server-start.sh "$config"

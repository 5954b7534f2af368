"""Who owns which partitions in a consumer group, as the broker's group coordinator says."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import GroupCoordinatorNotAvailableError


async def group_assignment(bootstrap: str, group: str) -> tuple[str, dict[str, set[int]]]:
    """The group's state ("Stable", "PreparingRebalance", ...) and each member's partitions;
    "Unavailable" while the broker has no coordinator for it yet (a young broker)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    except GroupCoordinatorNotAvailableError:
        return "Unavailable", {}
    finally:
        await admin.close()
    (described,) = response.groups
    _error, _group, state, _ptype, _protocol, members = described[:6]
    owned: dict[str, set[int]] = {}
    for member_id, _client, _host, _metadata, assignment in members:
        parts = ConsumerProtocolMemberAssignment.decode(assignment) if assignment else None
        owned[member_id] = {tp.partition for tp in parts.partitions()} if parts else set()
    return state, owned

"""Memorystore Redis for routing state and activity: AUTH on, TLS on, private access only.

The AUTH string and the server CA go to Secret Manager, never into config, env values or
logs: the router mounts them through the GKE Secret Manager add-on, the functions receive
them as Secret Manager-backed secrets. Only the listed accessors may read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.config import CacheConfig
from components.gcp.network import Network


@dataclass(frozen=True)
class RoutingCacheArgs:
    config: CacheConfig
    network: Network
    region: str
    project: str
    labels: dict[str, str]


class RoutingCache(pulumi.ComponentResource):
    """`sdfleet:gcp:RoutingCache`: the Redis instance plus its two secrets."""

    def __init__(self, name: str, args: RoutingCacheArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:RoutingCache", name, None, opts)
        self.project = args.project
        self.instance = gcp.redis.Instance(
            f"{name}-redis", name=f"{name}-redis", region=args.region, tier=args.config.tier,
            memory_size_gb=args.config.memory_size_gb, redis_version=args.config.redis_version,
            authorized_network=args.network.vpc.id, connect_mode="PRIVATE_SERVICE_ACCESS",
            auth_enabled=True, transit_encryption_mode="SERVER_AUTHENTICATION",
            labels=args.labels,
            # The weak moment chosen: Basic instances are flushed in maintenance.
            maintenance_policy=gcp.redis.InstanceMaintenancePolicyArgs(
                weekly_maintenance_windows=[gcp.redis.InstanceMaintenancePolicyWeeklyMaintenanceWindowArgs(
                    day=args.config.maintenance_window.day,
                    start_time=gcp.redis.InstanceMaintenancePolicyWeeklyMaintenanceWindowStartTimeArgs(
                        hours=args.config.maintenance_window.hour, minutes=0))]),
            persistence_config=gcp.redis.InstancePersistenceConfigArgs(
                persistence_mode="RDB" if args.config.rdb_snapshot_period else "DISABLED",
                rdb_snapshot_period=args.config.rdb_snapshot_period),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.network.private_services]))
        self.host = self.instance.host
        self.port = self.instance.port

        self.auth_secret = self._secret(f"{name}-redis-auth", self.instance.auth_string, args.labels)
        ca = self.instance.server_ca_certs.apply(lambda certs: certs[0].cert if certs else "")
        self.ca_secret = self._secret(f"{name}-redis-ca", ca, args.labels)
        self.register_outputs({"host": self.host, "port": self.port})

    def _secret(self, secret_id: str, value: pulumi.Input[str], labels: dict[str, str]):
        secret = gcp.secretmanager.Secret(
            secret_id, secret_id=secret_id, project=self.project, labels=labels,
            replication=gcp.secretmanager.SecretReplicationArgs(
                auto=gcp.secretmanager.SecretReplicationAutoArgs()),
            opts=pulumi.ResourceOptions(parent=self))
        gcp.secretmanager.SecretVersion(
            f"{secret_id}-v", secret=secret.id, secret_data=pulumi.Output.secret(value),
            opts=pulumi.ResourceOptions(parent=self))
        return secret

    def grant_access(self, name: str, member: pulumi.Input[str]) -> None:
        """Let one service account read the AUTH string and CA (secret-level, not project)."""
        for secret, what in ((self.auth_secret, "auth"), (self.ca_secret, "ca")):
            gcp.secretmanager.SecretIamMember(
                f"{name}-reads-redis-{what}", project=self.project, secret_id=secret.secret_id,
                role="roles/secretmanager.secretAccessor", member=member,
                opts=pulumi.ResourceOptions(parent=self))

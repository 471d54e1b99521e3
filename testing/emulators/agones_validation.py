"""Agones's own admission validation of Fleets, GameServers and FleetAutoscalers (v1.50.0).

Written from Agones's source at the version the program pins (components/k8s/agones.py,
AGONES_CHART_VERSION = 1.50.0), function by function; each function names its original.
The emulator (testing/emulators/agones.py) runs these on create, and
tests/program/k8s/test_k8s_agones_objects.py runs them on what the program renders, so a Fleet
the real webhook would refuse never passes a test.

Covered: the rules that can refuse an object we write (names, strategy, scheduling, game
server container, ports and port policies with their feature gates, resource quantities,
label syntax, Buffer / Schedule / Chain policies, fixed-interval sync) plus the CRD schema
bounds that back them (install/helm/agones/templates/crds/*.yaml). Not covered, because the
program never writes them: Webhook, Counter and List policies, dev-address game servers,
player tracking, counters, lists, allocation overflow.

Each problem is `"<field path>: <message>"`, like Kubernetes's field.ErrorList.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# pkg/util/runtime/features.go (v1.50.0), featureDefaults: PortPolicyNone is Beta (on),
# ScheduledAutoscaler is Alpha (off unless the chart's featureGates turn it on).
DEFAULT_FEATURES = {"PortPolicyNone": True, "ScheduledAutoscaler": False,
                    "PlayerTracking": False, "CountsAndLists": True}

# pkg/apis/agones/v1/common.go (v1.50.0): the error texts.
ERR_CONTAINER_REQUIRED = "Container is required when using multiple containers in the pod template"
ERR_HOST_PORT = "HostPort cannot be specified with a Dynamic or Passthrough PortPolicy"
ERR_CONTAINER_PORT_REQUIRED = "ContainerPort must be defined for Dynamic and Static PortPolicies"
ERR_CONTAINER_PORT_PASSTHROUGH = "ContainerPort cannot be specified with Passthrough PortPolicy"
ERR_CONTAINER_NAME_INVALID = "Container must be empty or the name of a container in the pod template"

PORT_POLICIES = ("Dynamic", "Static", "Passthrough", "None")
SCHEDULING = ("Packed", "Distributed")
IS_NEGATIVE = "must be greater than or equal to 0"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


from testing.emulators.apimachinery import _validate_annotations, _validate_labels, parse_quantity
from testing.emulators.cron import parse_standard_cron


def features_from_gates(gates: str) -> dict[str, bool]:
    """The chart's `agones.featureGates` string (`A=true&B=false`) over the defaults."""
    features = dict(DEFAULT_FEATURES)
    for item in filter(None, (gates or "").split("&")):
        key, _, value = item.partition("=")
        features[key] = value.strip().lower() == "true"
    return features


# --- pkg/apis/agones/v1 ---------------------------------------------------------------------------

def validate_name(meta: dict, path: str = "metadata") -> list[str]:
    """common.go `validateName`: a name longer than 63 characters cannot be a label value."""
    name = (meta or {}).get("name") or ""
    if len(name) > 63:
        return [f"{path}.name: Too long: may not be more than 63 bytes"]
    return []


def validate_object_meta(meta: dict | None, path: str) -> list[str]:
    """common.go `validateObjectMeta`: labels and annotations of a template."""
    meta = meta or {}
    return (_validate_labels(meta.get("labels"), f"{path}.labels")
            + _validate_annotations(meta.get("annotations"), f"{path}.annotations"))


def validate_resource_requirements(resources: dict | None, path: str) -> list[str]:
    """gameserver.go `ValidateResourceRequirements`: non-negative quantities, request <= limit."""
    resources = resources or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    problems = []
    parsed_limits = {}
    for name, quantity in limits.items():
        try:
            parsed_limits[name] = parse_quantity(quantity)
        except ValueError as error:
            problems.append(f"{path}.limits[{name}]: Invalid value: {error}")
            continue
        if parsed_limits[name] < 0:
            problems.append(f"{path}.limits[{name}]: Invalid value: {quantity!r}: {IS_NEGATIVE}")
    for name, quantity in requests.items():
        try:
            value = parse_quantity(quantity)
        except ValueError as error:
            problems.append(f"{path}.requests[{name}]: Invalid value: {error}")
            continue
        if value < 0:
            problems.append(f"{path}.requests[{name}]: Invalid value: {quantity!r}: {IS_NEGATIVE}")
        if name in parsed_limits and value > parsed_limits[name]:
            problems.append(f"{path}.requests: Invalid value: {quantity!r}: must be less than or "
                            f"equal to {name} limit of {limits[name]}")
    return problems


def _container_names(spec: dict) -> list[str]:
    return [c.get("name") for c in ((spec.get("template") or {}).get("spec") or {})
            .get("containers") or []]


def game_server_container(spec: dict) -> str:
    """gameserver.go `applyContainerDefaults`: with exactly one container, that one."""
    names = _container_names(spec)
    return spec.get("container") or (names[0] if len(names) == 1 else "")


def validate_feature_gates(spec: dict, features: dict, path: str) -> list[str]:
    """gameserver.go `(*GameServerSpec).validateFeatureGates`."""
    problems = []
    if not features.get("PlayerTracking") and spec.get("players") is not None:
        problems.append(f"{path}.players: Forbidden: Value cannot be set unless feature flag "
                        "PlayerTracking is enabled")
    if not features.get("CountsAndLists"):
        for key in ("counters", "lists"):
            if spec.get(key) is not None:
                problems.append(f"{path}.{key}: Forbidden: Value cannot be set unless feature "
                                "flag CountsAndLists is enabled")
    if not features.get("PortPolicyNone"):
        for i, port in enumerate(spec.get("ports") or []):
            if port.get("portPolicy") == "None":
                problems.append(f"{path}.ports[{i}].portPolicy: Forbidden: Value cannot be set "
                                "to None unless feature flag PortPolicyNone is enabled")
    return problems


def validate_game_server_spec(spec: dict, features: dict, path: str = "spec") -> list[str]:
    """gameserver.go `(*GameServerSpec).Validate` (devAddress empty: fleets and plain
    game servers), after `ApplyDefaults` (container and port defaults), plus the CRD bounds
    of install/helm/agones/templates/crds/_gameserverspecschema.yaml."""
    spec = spec or {}
    problems = validate_feature_gates(spec, features, path)
    names = _container_names(spec)
    container = game_server_container(spec)
    if not names:
        problems.append(f"{path}.template.spec.containers: Required value")
    if container == "" and len(names) > 1:
        problems.append(f"{path}.container: Required value: {ERR_CONTAINER_REQUIRED}")
    elif container not in names:
        # FindContainer: "Could not find a container named <name>"
        problems.append(f"{path}.container: Invalid value: {container!r}: Could not find a "
                        f"container named {container}")
    if spec.get("container") and not _DNS_LABEL.match(spec["container"]):
        problems.append(f"{path}.container: Invalid value: {spec['container']!r}: must match "
                        "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ (CRD schema)")
    for i, port in enumerate(spec.get("ports") or []):
        where = f"{path}.ports[{i}]"
        policy = port.get("portPolicy") or "Dynamic"   # applyPortDefaults
        protocol = port.get("protocol") or "UDP"
        if policy not in PORT_POLICIES:
            problems.append(f"{where}.portPolicy: Unsupported value: {policy!r} (CRD schema)")
        if protocol not in ("UDP", "TCP", "TCPUDP"):
            problems.append(f"{where}.protocol: Unsupported value: {protocol!r} (CRD schema)")
        container_port = port.get("containerPort") or 0
        host_port = port.get("hostPort") or 0
        if policy in ("Dynamic", "Static") and container_port <= 0:
            problems.append(f"{where}.containerPort: Required value: {ERR_CONTAINER_PORT_REQUIRED}")
        if policy == "Passthrough" and container_port > 0:
            problems.append(f"{where}.containerPort: Required value: {ERR_CONTAINER_PORT_PASSTHROUGH}")
        if host_port > 0 and policy in ("Dynamic", "Passthrough"):
            problems.append(f"{where}.hostPort: Forbidden: {ERR_HOST_PORT}")
        if container_port and not 1 <= container_port <= 65535:
            problems.append(f"{where}.containerPort: Invalid value: {container_port}: must be "
                            "between 1 and 65535 (CRD schema)")
        if port.get("container") and container and port["container"] not in names:
            problems.append(f"{where}.container: Invalid value: {port['container']!r}: "
                            f"{ERR_CONTAINER_NAME_INVALID}")
    pod = (spec.get("template") or {}).get("spec") or {}
    for i, c in enumerate(pod.get("containers") or []):
        problems += validate_resource_requirements(
            c.get("resources"), f"{path}.template.spec.containers[{i}].resources")
    problems += validate_object_meta((spec.get("template") or {}).get("metadata"),
                                     f"{path}.template.metadata")
    return problems


def validate_game_server(obj: dict, features: dict | None = None) -> list[str]:
    """gameserver.go `(*GameServer).Validate`."""
    features = DEFAULT_FEATURES if features is None else features
    return (validate_name(obj.get("metadata") or {})
            + validate_game_server_spec(obj.get("spec") or {}, features, "spec"))


def _int_or_percent(value, path: str, rule: str) -> list[str]:
    """fleet.go `(*Fleet).validateRollingUpdate`: a percentage in 1..99, or an integer >= 1."""
    if isinstance(value, str):
        m = re.fullmatch(r"([0-9]+)%", value)
        if not m or not 1 <= int(m.group(1)) <= 99:
            return [f"{path}: Invalid value: {value!r}: must be between 1% and 99%"]
        return []
    if not isinstance(value, int) or value < 1:
        return [f"{path}: Invalid value: {value!r}: must be at least 1"]
    return []


def validate_fleet(obj: dict, features: dict | None = None) -> list[str]:
    """fleet.go `(*Fleet).Validate` after `(*Fleet).ApplyDefaults`, with the Fleet CRD's
    bounds (crds/fleet.yaml: replicas >= 0)."""
    features = DEFAULT_FEATURES if features is None else features
    spec = obj.get("spec") or {}
    problems = validate_name(obj.get("metadata") or {})
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type") or "RollingUpdate"
    if kind == "RollingUpdate":
        rolling = strategy.get("rollingUpdate") or {}
        for key in ("maxUnavailable", "maxSurge"):
            problems += _int_or_percent(rolling.get(key, "25%"),
                                        f"spec.strategy.rollingUpdate.{key}", key)
    elif kind != "Recreate":
        problems.append(f"spec.strategy.type: Unsupported value: {kind!r}: supported values: "
                        "\"RollingUpdate\", \"Recreate\"")
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
        problems.append(f"spec.replicas: Invalid value: {replicas!r}: should be >= 0 (CRD schema)")
    template = spec.get("template") or {}
    problems += validate_game_server_spec(template.get("spec") or {}, features,
                                          "spec.template.spec")
    # apiHooks.ValidateScheduling (pkg/cloudproduct/generic): Packed or Distributed.
    scheduling = spec.get("scheduling") or "Packed"
    if scheduling not in SCHEDULING:
        problems.append(f"spec.scheduling: Unsupported value: {scheduling!r}")
    problems += validate_object_meta(template.get("metadata"), "spec.template.metadata")
    if spec.get("priorities") is not None and not features.get("CountsAndLists"):
        problems.append("spec.priorities: Forbidden: FeatureCountsAndLists is not enabled")
    return problems


# --- pkg/apis/autoscaling/v1 ----------------------------------------------------------------------

def validate_buffer_policy(buffer: dict | None, path: str) -> list[str]:
    """fleetautoscaler.go `(*BufferPolicy).ValidateBufferPolicy`, with the CRD's bounds
    (crds/_fleetautoscalerpolicy.yaml: maxReplicas required and >= 1, minReplicas >= 0)."""
    if buffer is None:
        return [f"{path}: Required value: buffer policy config params are missing"]
    problems = []
    min_replicas = buffer.get("minReplicas", 0)
    max_replicas = buffer.get("maxReplicas")
    if max_replicas is None:
        return [f"{path}.maxReplicas: Required value (CRD schema)"]
    if max_replicas < 1:
        problems.append(f"{path}.maxReplicas: Invalid value: {max_replicas}: should be >= 1 "
                        "(CRD schema)")
    if min_replicas < 0:
        problems.append(f"{path}.minReplicas: Invalid value: {min_replicas}: should be >= 0 "
                        "(CRD schema)")
    if min_replicas > max_replicas:
        problems.append(f"{path}.minReplicas: Invalid value: {min_replicas}: minReplicas should "
                        "be smaller than maxReplicas")
    size = buffer.get("bufferSize", 0)
    if isinstance(size, int):
        if size <= 0:
            problems.append(f"{path}.bufferSize: Invalid value: {size}: {IS_NEGATIVE}")
        if max_replicas < size:
            problems.append(f"{path}.maxReplicas: Invalid value: {max_replicas}: maxReplicas "
                            "should be bigger than or equal to bufferSize")
        if min_replicas != 0 and min_replicas < size:
            problems.append(f"{path}.minReplicas: Invalid value: {min_replicas}: minReplicas "
                            "should be bigger than or equal to bufferSize")
    else:
        m = re.fullmatch(r"([0-9]+)%", str(size))
        if not m or not 1 <= int(m.group(1)) <= 99:
            problems.append(f"{path}.bufferSize: Invalid value: {size!r}: bufferSize should be "
                            "between 1% and 99%")
        if min_replicas < 1:
            problems.append(f"{path}.minReplicas: Invalid value: {min_replicas}: {IS_NEGATIVE}")
    return problems


_GO_DURATION = re.compile(r"^[-+]?(([0-9]*(\.[0-9]*)?)(ns|us|µs|ms|s|m|h))+$|^0$")


def validate_schedule_policy(schedule: dict | None, features: dict, path: str) -> list[str]:
    """fleetautoscaler.go `(*SchedulePolicy).ValidateSchedulePolicy` (v1.50.0 does not
    validate the nested policy itself)."""
    if schedule is None:
        return [f"{path}: Required value: schedule policy config params are missing"]
    if not features.get("ScheduledAutoscaler"):
        return [f"{path}: Forbidden: feature ScheduledAutoscaler must be enabled"]
    problems = []
    period = schedule.get("activePeriod") or {}
    timezone = period.get("timezone") or ""
    if timezone:
        try:
            ZoneInfo(timezone)   # time.LoadLocation
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"{path}.activePeriod.timezone: Invalid value: {timezone!r}: "
                            "Error parsing timezone")
    cron = period.get("startCron") or ""
    if cron:
        try:
            parse_standard_cron(cron)
        except ValueError as error:
            problems.append(f"{path}.activePeriod.startCron: Invalid value: {cron!r}: "
                            f"invalid startCron: {error}")
        if "TZ" in cron:
            problems.append(f"{path}.activePeriod.startCron: Invalid value: {cron!r}: CRON_TZ or "
                            "TZ used in activePeriod is not supported")
    duration = period.get("duration") or ""
    if duration and not _GO_DURATION.match(duration):   # time.ParseDuration
        problems.append(f"{path}.activePeriod.duration: Invalid value: {duration!r}: "
                        "invalid duration")
    return problems


POLICY_TYPES = ("Buffer", "Webhook", "Counter", "List", "Schedule", "Chain")


def validate_policy(policy: dict | None, features: dict, path: str) -> list[str]:
    """fleetautoscaler.go `(*FleetAutoscalerPolicy).ValidatePolicy`, with the CRD's type
    enum (Schedule and Chain only when the ScheduledAutoscaler gate is on)."""
    policy = policy or {}
    kind = policy.get("type")
    allowed = POLICY_TYPES if features.get("ScheduledAutoscaler") else POLICY_TYPES[:4]
    if kind not in allowed:
        return [f"{path}.type: Unsupported value: {kind!r}: supported values: "
                + ", ".join(f'"{t}"' for t in allowed) + " (CRD schema)"]
    if kind == "Buffer":
        return validate_buffer_policy(policy.get("buffer"), f"{path}.buffer")
    if kind == "Schedule":
        return validate_schedule_policy(policy.get("schedule"), features, f"{path}.schedule")
    if kind == "Chain":
        return validate_chain_policy(policy.get("chain"), features, f"{path}.chain")
    return [f"{path}.type: {kind} policies are not modelled by this emulator"]


def validate_chain_policy(chain: list | None, features: dict, path: str) -> list[str]:
    """fleetautoscaler.go `(*ChainPolicy).ValidateChainPolicy`."""
    if chain is None:
        return [f"{path}: Required value: chain policy config params are missing"]
    if not features.get("ScheduledAutoscaler"):
        return [f"{path}: Forbidden: feature ScheduledAutoscaler must be enabled"]
    problems, seen = [], set()
    for i, entry in enumerate(chain):
        entry_id = entry.get("id", "")
        if entry_id in seen:
            problems.append(f"{path}: Invalid value: {entry_id!r}: id of chain entry must be unique")
        seen.add(entry_id)
        has_policy = any(entry.get(k) is not None
                         for k in ("buffer", "webhook", "counter", "list", "schedule"))
        if not entry.get("type") or not has_policy:
            problems.append(f"{path}[{i}]: Required value: valid policy is missing")
        problems += validate_policy(entry, features, f"{path}[{i}].policy")
    return problems


def validate_fleet_autoscaler(obj: dict, features: dict | None = None) -> list[str]:
    """fleetautoscaler.go `(*FleetAutoscaler).Validate` after `ApplyDefaults`, with the CRD's
    required fields (crds/fleetautoscaler.yaml: spec.fleetName, spec.policy)."""
    features = DEFAULT_FEATURES if features is None else features
    spec = obj.get("spec") or {}
    problems = []
    if not spec.get("fleetName"):
        problems.append("spec.fleetName: Required value (CRD schema)")
    problems += validate_policy(spec.get("policy"), features, "spec.policy")
    sync = spec.get("sync")
    if sync is not None:
        seconds = (sync.get("fixedInterval") or {}).get("seconds", 30)   # default 30
        if seconds <= 0:
            problems.append(f"spec.sync.fixedInterval.seconds: Invalid value: {seconds}: "
                            f"{IS_NEGATIVE}")
    return problems


VALIDATORS = {"Fleet": validate_fleet, "GameServer": validate_game_server,
              "FleetAutoscaler": validate_fleet_autoscaler}


def validate(obj: dict, features: dict | None = None) -> list[str]:
    """The problems Agones's admission webhook would answer for `obj` (empty: admitted)."""
    return VALIDATORS[obj["kind"]](obj, features)


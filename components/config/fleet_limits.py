"""What Agones refuses in a fleet autoscaler's Buffer policy, checked before the plan exists."""

from __future__ import annotations


def buffer_policy_problems(buffer: int, min_replicas: int, max_replicas: int
                           ) -> list[tuple[str, int, str]]:
    """What Agones refuses in a Buffer policy with an integer bufferSize: (field, value, rule).

    Mirrors agones v1.50.0 pkg/apis/autoscaling/v1/fleetautoscaler.go,
    `(*BufferPolicy).ValidateBufferPolicy`; the emulator (testing/emulators/agones_validation.py)
    carries its own copy of that function and a test checks the two agree.
    """
    problems = []
    if min_replicas > max_replicas:
        problems.append(("minReplicas", min_replicas,
                         f"minReplicas must be <= maxReplicas ({max_replicas})"))
    if buffer <= 0:
        problems.append(("bufferSize", buffer, "a buffer must be >= 1 (Agones refuses 0)"))
    if max_replicas < buffer:
        problems.append(("bufferSize", buffer,
                         f"a buffer must be <= fleet.maxReplicas ({max_replicas})"))
    if min_replicas != 0 and min_replicas < buffer:
        problems.append(("minReplicas", min_replicas,
                         f"minReplicas must be 0 or >= every buffer ({buffer}): Agones refuses "
                         "0 < minReplicas < bufferSize"))
    return problems

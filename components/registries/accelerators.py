"""The GPUs a GCP platform can use: one registry, from which the config's accepted values,
the pool rule (which machine family each GPU attaches to), the cost estimate and the policy
pack's view of GPU pools derive. Adding a GPU type is one entry here and its price in
tools/prices.yaml (the cost tests check every entry has one).

Facts from Compute Engine's documentation ("GPU machine types", "GPU platforms"): N1 machines
take T4/V100/P4/P100 as attached guest accelerators; the accelerator-optimized series
(A2, A3, A4, G2, G4) come with their GPUs as part of the machine type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GceAccelerator:
    name: str                          # the accelerator type (node pool guestAccelerators.type)
    label: str                         # what people call it
    machine_families: tuple[str, ...]  # the machine families it runs on
    memory_gib: int                    # memory per GPU


GCE_ACCELERATORS: dict[str, GceAccelerator] = {a.name: a for a in (
    GceAccelerator("nvidia-l4", "L4", ("g2",), 24),
    GceAccelerator("nvidia-tesla-t4", "T4", ("n1",), 16),
    GceAccelerator("nvidia-tesla-v100", "V100", ("n1",), 16),
    GceAccelerator("nvidia-tesla-p4", "P4", ("n1",), 8),
    GceAccelerator("nvidia-tesla-p100", "P100", ("n1",), 16),
    GceAccelerator("nvidia-tesla-a100", "A100 40GB", ("a2",), 40),
    GceAccelerator("nvidia-a100-80gb", "A100 80GB", ("a2",), 80),
    GceAccelerator("nvidia-h100-80gb", "H100 80GB", ("a3",), 80),
)}

# Machine series whose machine types include their GPUs (no guestAccelerators to attach).
ACCELERATOR_OPTIMIZED_FAMILIES = ("a2", "a3", "a4", "g2", "g4")


def register(accelerator: GceAccelerator) -> None:
    """Add an entry before the config models are imported (tests; a fork's extra GPU)."""
    GCE_ACCELERATORS[accelerator.name] = accelerator


def machine_family(machine_type: str) -> str:
    return machine_type.split("-", 1)[0]


def brings_its_gpus(machine_type: str) -> bool:
    """An accelerator-optimized machine type: its GPUs come with it."""
    return machine_family(machine_type) in ACCELERATOR_OPTIMIZED_FAMILIES


def family_rule_text() -> str:
    """Which family each GPU needs, as a sentence for config errors."""
    return ", ".join(f"{a.label} needs {'/'.join(a.machine_families)}"
                     for a in GCE_ACCELERATORS.values())

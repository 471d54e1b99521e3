"""The monthly cost estimate: lines per cost item, hours from peak windows, nothing guessed."""

from __future__ import annotations

import copy

import pytest

from tools import cost

HOURS = 730


def _line(estimate: dict, starts: str) -> dict:
    found = [line for line in estimate["lines"] if line["item"].startswith(starts)]
    assert len(found) == 1, [line["item"] for line in estimate["lines"]]
    return found[0]


def _gcp_prices() -> dict:
    return cost.price_table()["gcp"]["us-central1"]


@pytest.mark.parametrize("cron,duration,hours", [
    ("0 8 * * 1-5", "10h", 50.0),      # weekdays 08:00-18:00
    ("0 22 * * *", "4h", 28.0),        # across midnight, every day
    ("0 8,12 * * MON-FRI", "6h", 50.0),  # 08:00-14:00 and 12:00-18:00 overlap: counted once
    ("30 9 * * 6", "1h30m", 1.5),
    ("0 0 * * 0", "168h", 168.0),      # a window as long as the week covers all of it
])
def test_peak_window_hours_per_week(cron, duration, hours):
    assert cost.window_hours_per_week(cron, duration) == pytest.approx(hours, rel=0.01)


def test_cron_runs_per_month():
    assert cost.runs_per_month("* * * * *") == pytest.approx(HOURS * 60, rel=0.001)
    assert cost.runs_per_month("*/5 * * * *") == pytest.approx(HOURS * 12, rel=0.001)
    assert cost.runs_per_month("0 3 1 * *") == 1


def test_gcp_estimate_has_every_standing_cost(stack_config_of):
    estimate = cost.estimate(stack_config_of())
    items = [line["item"] for line in estimate["lines"]]
    for starts in ("GKE cluster management fee", "system nodes", "warm GPU buffer", "placeholders",
                   "Filestore", "Memorystore", "Cloud NAT", "HTTPS load balancer", "Cloud Functions",
                   "Cloud Scheduler"):
        assert any(item.startswith(starts) for item in items), (starts, items)
    assert estimate["totalMonthlyUsd"] == pytest.approx(sum(l["monthlyUsd"] for l in estimate["lines"]))
    assert estimate["missing"] == []
    assert estimate["priceTable"]["version"] and estimate["priceTable"]["transcribed"]


def test_system_nodes_and_storage_follow_the_price_table(stack_config_of):
    config = stack_config_of(systemPool={"machineType": "e2-standard-8", "minNodes": 2,
                                         "diskSizeGb": 100, "diskType": "pd-standard"},
                             storage={"tier": "BASIC_SSD", "capacityGb": 2560})
    prices = _gcp_prices()
    estimate = cost.estimate(config)
    system = 2 * (prices["machineTypes"]["e2-standard-8"]["perHour"] * HOURS
                  + prices["disks"]["pd-standard"]["perGbMonth"] * 100)
    assert _line(estimate, "system nodes: 2 x e2-standard-8")["monthlyUsd"] == pytest.approx(system, abs=0.01)
    assert _line(estimate, "Filestore BASIC_SSD")["monthlyUsd"] == \
        pytest.approx(prices["filestore"]["BASIC_SSD"]["perGibMonth"] * 2560, abs=0.01)


def test_peak_hours_buffer_and_placeholders_are_priced_for_their_hours(stack_config_of):
    pool = {"name": "t4", "machineType": "n1-standard-8", "accelerator": "nvidia-tesla-t4",
            "maxNodes": 10, "diskSizeGb": 100, "diskType": "pd-ssd"}
    fleet = {"buffer": 1, "placeholders": 2,
             "peakHours": {"startCron": "0 8 * * 1-5", "duration": "10h", "buffer": 3}}
    estimate = cost.estimate(stack_config_of(gpuPools=[pool], fleet=fleet))
    prices = _gcp_prices()
    node_hour = (prices["machineTypes"]["n1-standard-8"]["perHour"]
                 + prices["accelerators"]["nvidia-tesla-t4"]["perGpuHour"]
                 + prices["disks"]["pd-ssd"]["perGbMonth"] * 100 / HOURS)
    # 50 h/week in hours per month (a calendar year has 260-262 weekdays: within 0.5 %)
    peak = 50 * 365 / 12 / 7
    assert _line(estimate, "warm GPU buffer: 1 x")["monthlyUsd"] == \
        pytest.approx(node_hour * (HOURS - peak), rel=0.005)
    assert _line(estimate, "warm GPU buffer, peak hours: 3 x")["monthlyUsd"] == \
        pytest.approx(3 * node_hour * peak, rel=0.005)
    assert _line(estimate, "placeholders: 2 x")["monthlyUsd"] == pytest.approx(2 * node_hour * HOURS, abs=0.02)
    assert estimate["gpuHourUsd"] == pytest.approx(node_hour, abs=0.0001)


def test_gpu_time_sharing_divides_the_person_hour(stack_config_of):
    pool = {"name": "l4", "machineType": "g2-standard-8", "accelerator": "nvidia-l4", "maxNodes": 4}
    alone = cost.estimate(stack_config_of(gpuPools=[pool]))["gpuHourUsd"]
    shared = cost.estimate(stack_config_of(gpuPools=[{**pool, "timeSharingClients": 4}]))["gpuHourUsd"]
    assert shared == pytest.approx(alone / 4, abs=0.0001)
    # g2 prices include their L4: the accelerator is not added a second time.
    prices = _gcp_prices()
    assert alone == pytest.approx(prices["machineTypes"]["g2-standard-8"]["perHour"]
                                  + prices["disks"]["pd-ssd"]["perGbMonth"] * 200 / HOURS, abs=0.0001)


def test_unpriced_machine_type_and_tier_are_reported_not_guessed(stack_config_of):
    pool = {"name": "big", "machineType": "g2-standard-96", "accelerator": "nvidia-l4",
            "acceleratorCount": 8, "maxNodes": 2}
    estimate = cost.estimate(stack_config_of(gpuPools=[pool], storage={"tier": "ZONAL"}))
    assert "gcp machine type g2-standard-96" in estimate["missing"]
    assert "gcp Filestore tier ZONAL" in estimate["missing"]
    assert estimate["gpuHourUsd"] is None
    assert not any(line["item"].startswith(("warm GPU buffer", "Filestore")) for line in estimate["lines"])
    assert estimate["totalMonthlyUsd"] > 0  # what is priced is still summed


def test_region_missing_from_the_table_prices_nothing(stack_config_of):
    table = copy.deepcopy(cost.price_table())
    del table["gcp"]["us-central1"]
    estimate = cost.estimate(stack_config_of(), prices=table)
    assert estimate["lines"] == [] and estimate["totalMonthlyUsd"] == 0
    assert estimate["missing"][0].startswith("gcp region us-central1")


def test_aws_estimate_has_every_standing_cost(stack_config_of):
    config = stack_config_of(cloud="aws", aws={"systemInstanceType": "m6i.large", "systemNodes": 2,
                                               "zoneCount": 3, "gpuFamilies": ["g5", "g6"],
                                               "runtimes": [{"name": "sdwebui"}, {"name": "comfy"}]})
    estimate = cost.estimate(config)
    prices = cost.price_table()["aws"]["us-east-1"]
    assert _line(estimate, "EKS control plane")["monthlyUsd"] == pytest.approx(0.10 * HOURS)
    assert _line(estimate, "system nodes: 2 x m6i.large")["monthlyUsd"] == pytest.approx(
        2 * (prices["instanceTypes"]["m6i.large"]["perHour"] * HOURS
             + prices["ebs"]["gp3PerGbMonth"] * cost.AWS_NODE_DISK_GB), abs=0.01)
    assert _line(estimate, "NAT gateways: 3")["monthlyUsd"] == pytest.approx(
        3 * HOURS * (prices["nat"]["perGatewayHour"] + prices["publicIpv4PerHour"]), abs=0.01)
    for starts in ("EFS", "API Gateway", "SQS: 2 queue(s)", "GPU nodes"):
        _line(estimate, starts)
    # Karpenter picks the cheapest fitting type: g6.xlarge is cheaper per GPU than g5.xlarge.
    assert estimate["gpuHourUsd"] == prices["instanceTypes"]["g6.xlarge"]["perHour"]
    assert estimate["missing"] == []


def test_price_table_is_read_once():
    assert cost.price_table() is cost.price_table()

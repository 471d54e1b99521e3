"""Profiles in a real browser: the demo with three profiles (the real router, allocator and
Agones emulator), people at headless Chromium.

- lin may use one profile and is never asked;
- grace may use two: she chooses ComfyUI and lands in its fleet, then switches to
  AUTOMATIC1111 through the confirmation, and never holds two game servers;
- ada chooses the A100 profile, whose pool gets no GPU (a stock-out the cluster autoscaler
  reports): the waiting page says so within 60 s and offers the others.

Screenshots of the choice and the capacity page go to $SDFLEET_SCREENSHOTS (README's come
from `SDFLEET_SCREENSHOTS=docs/images make test-demo`), else the test's own folder.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import pytest
import yaml
from selenium.webdriver.common.by import By

from testing.helpers.servers import free_port
from tests.demo.conftest import TEST_TIMINGS, identity_of
from tools.demo.world import Demo
from tools.preview import ROOT

PROFILES = [
    {"name": "a1111", "displayName": "AUTOMATIC1111 on an L4",
     "description": "The classic WebUI.", "framework": "automatic1111", "gpuPool": "l4",
     "warm": 1, "maxSessions": 4, "default": True},
    {"name": "comfyui", "displayName": "ComfyUI on a shared T4",
     "description": "Node workflows.", "framework": "comfyui", "gpuPool": "t4-shared",
     "access": ["user:ada@example.com", "user:grace@example.com"], "warm": 1, "maxSessions": 2},
    {"name": "big", "displayName": "SD.Next on an A100",
     "description": "Large models.", "framework": "sdnext", "gpuPool": "a100",
     "access": ["user:ada@example.com"], "warm": 1, "maxSessions": 2},
]
A100_POOL = {"name": "a100", "machineType": "a2-highgpu-1g", "accelerator": "nvidia-tesla-a100",
             "minNodes": 0, "maxNodes": 1, "spot": True}


@pytest.fixture(scope="module")
def profiles_demo(tmp_path_factory):
    raw = yaml.safe_load((ROOT / "Pulumi.demo.yaml").read_text())
    platform = copy.deepcopy(raw["config"]["sdfleet:platform"])
    platform["fleet"] = {"namespace": platform["fleet"]["namespace"]}
    platform["webui"].pop("framework", None)
    platform["gpuPools"].append(A100_POOL)
    platform["profiles"] = PROFILES
    platform["budgets"] = {"defaultGpuHours": 1, "contact": "#gpu-help on the team chat"}
    platform["access"]["admins"] = ["user:ada@example.com"]
    raw["config"]["sdfleet:platform"] = platform
    path = tmp_path_factory.mktemp("stack") / "Pulumi.demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    world = Demo("demo", port=free_port(), state_dir=tmp_path_factory.mktemp("demo"),
                 config_file=path, overrides={
                     **TEST_TIMINGS, "noCapacity": ["big"],
                     "accounts": ["ada@example.com", "grace@example.com", "lin@example.com",
                                  "kim@example.com", "mo@example.com"]}
                 ).start()
    yield world
    world.stop()


@pytest.fixture
def at_browser(profiles_demo):
    from tests.demo.conftest import Person
    made: list[Person] = []

    def person(email: str) -> Person:
        made.append(Person(profiles_demo, email))
        return made[-1]
    yield person
    for p in made:
        p.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    where = os.environ.get("SDFLEET_SCREENSHOTS")
    return Path(where) if where else tmp_path_factory.mktemp("screenshots")


def fleets_of(demo: Demo, email: str) -> list[str]:
    ident = identity_of(email)
    return sorted(gs["metadata"]["labels"]["agones.dev/fleet"]
                  for gs in demo.emulator.game_servers(state="Allocated")
                  if gs["metadata"]["labels"].get("sdfleet.dev/identity") == ident)


def click_profile(person, name: str) -> None:
    person.driver.find_element(By.CSS_SELECTOR, f"button[data-profile='{name}']").click()


def test_one_profile_is_never_asked(profiles_demo, at_browser):
    lin = at_browser("lin@example.com")
    lin.sign_in()
    lin.webui()
    assert "Choose your WebUI" not in lin.titles
    assert fleets_of(profiles_demo, lin.email) == ["sdfleet-webui-a1111"]


def test_choose_then_switch_through_the_confirmation(profiles_demo, at_browser, screenshots):
    grace = at_browser("grace@example.com")
    grace.sign_in()
    grace.wait_for("the choice", lambda: grace.driver.title == "Choose your WebUI")
    offered = [e.get_attribute("data-profile")
               for e in grace.driver.find_elements(By.CSS_SELECTOR, "li.profile")]
    assert offered == ["a1111", "comfyui"]                 # not the A100 one: not hers
    grace.driver.save_screenshot(str(screenshots / "profiles-choice.png"))
    assert fleets_of(profiles_demo, grace.email) == []      # nothing started before she chose
    click_profile(grace, "comfyui")
    grace.webui()
    assert fleets_of(profiles_demo, grace.email) == ["sdfleet-webui-comfyui"]

    grace.driver.get(profiles_demo.url + "/_sdfleet/profiles")
    assert "This is your current profile" in grace.driver.page_source
    click_profile(grace, "a1111")
    grace.wait_for("the confirmation", lambda: grace.driver.find_elements(By.ID, "confirm"))
    assert "unsaved work in the WebUI is lost" in grace.driver.find_element(By.ID, "confirm").text
    assert fleets_of(profiles_demo, grace.email) == ["sdfleet-webui-comfyui"]   # not yet
    grace.driver.find_element(By.ID, "confirm-switch").click()
    # Until the new pod is hers, a page may still reach the old one, which is shutting down
    # (another router worker's route cache, a second at most here): wait for the cluster.
    grace.wait_for("her new session", lambda: fleets_of(profiles_demo, grace.email)
                   == ["sdfleet-webui-a1111"])
    grace.driver.get(profiles_demo.url + "/")
    grace.webui()
    assert fleets_of(profiles_demo, grace.email) == ["sdfleet-webui-a1111"]
    # Remembered: a new visit goes straight to the WebUI of the profile she chose last.
    grace.driver.get(profiles_demo.url + "/")
    grace.webui()
    assert "Choose your WebUI" not in grace.titles[-2:]


def test_no_gpu_is_said_within_a_minute_with_the_alternatives(profiles_demo, at_browser,
                                                              screenshots):
    ada = at_browser("ada@example.com")
    ada.sign_in()
    ada.wait_for("the choice", lambda: ada.driver.title == "Choose your WebUI")
    click_profile(ada, "big")
    started = time.monotonic()
    ada.wait_for("the capacity sentence", lambda: "No A100 40GB GPUs are available in "
                 "us-central1 right now" in ada.driver.find_element(By.ID, "message").text, 60)
    assert time.monotonic() - started < 60
    ada.wait_for("the alternatives", lambda: ada.driver.find_element(
        By.ID, "alternatives").is_displayed())
    ada.driver.save_screenshot(str(screenshots / "profiles-no-capacity.png"))
    offered = [e.get_attribute("data-profile")
               for e in ada.driver.find_elements(By.CSS_SELECTOR, "#alternatives li.profile")]
    assert offered == ["a1111", "comfyui"]
    click_profile(ada, "comfyui")
    ada.webui()
    assert fleets_of(profiles_demo, ada.email) == ["sdfleet-webui-comfyui"]


def test_over_budget_says_used_allowed_reset_and_whom_to_ask(profiles_demo, at_browser,
                                                              screenshots):
    redis = profiles_demo.redis_client()
    month = time.strftime("%Y-%m", time.gmtime())
    redis.hset(f"sdfleet:usage:{month}", identity_of("kim@example.com"), 2 * 3600 + 60)
    kim = at_browser("kim@example.com")
    kim.sign_in()
    kim.wait_for("the refusal", lambda: kim.driver.title == "Your GPU-hour budget is used up")
    text = kim.driver.find_element(By.ID, "message").text
    assert "You have used 2.0 of your 1 GPU-hours this month" in text
    assert "resets on 1 " in text and "#gpu-help on the team chat" in text
    kim.driver.save_screenshot(str(screenshots / "budget-over.png"))
    assert fleets_of(profiles_demo, kim.email) == []


def test_an_administrator_sees_sessions_and_ends_one_and_its_person_is_told(
        profiles_demo, at_browser, screenshots):
    mo, ada, grace = (at_browser("mo@example.com"), at_browser("ada@example.com"),
                      at_browser("grace@example.com"))
    mo.sign_in()
    mo.webui()
    grace.sign_in()
    grace.driver.get(profiles_demo.url + "/_sdfleet/admin")
    assert grace.driver.title == "For administrators only"             # not an admin: 403
    ada.sign_in()
    # every pod's cold start, measured: the culler recorded the demo's pods by phase
    profiles_demo.cull_now()
    ada.driver.get(profiles_demo.url + "/_sdfleet/admin")
    cold = ada.wait_for("cold starts", lambda: ada.driver.find_elements(
        By.CSS_SELECTOR, "table#cold-starts tr td"))
    assert "a1111" in {td.text for td in cold} and "total" in {td.text for td in cold}
    mo_id = identity_of(mo.email)
    row = ada.wait_for("mo's session", lambda: ada.driver.find_elements(
        By.CSS_SELECTOR, f"tr[data-id='{mo_id}']"))[0]
    assert "mo@example.com" in row.text and "a1111" in row.text
    ada.driver.save_screenshot(str(screenshots / "admin-sessions.png"))
    row.find_element(By.CSS_SELECTOR, "button[data-end]").click()
    ada.driver.switch_to.alert.accept()                                   # "unsaved work is lost"
    ada.wait_for("the row to go", lambda: not ada.driver.find_elements(
        By.CSS_SELECTOR, f"tr[data-id='{mo_id}']"))
    assert fleets_of(profiles_demo, mo.email) == []
    mo.driver.get(profiles_demo.url + "/")
    mo.wait_for("the notice", lambda: mo.driver.title == "Your session was ended")
    assert "An administrator ended your session" in mo.driver.find_element(By.ID, "message").text
    mo.driver.get(profiles_demo.url + "/")                                # said once; starts again
    mo.webui()

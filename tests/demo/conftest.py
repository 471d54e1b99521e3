"""`make demo`'s machinery for the browser tests: one demo for the module, and a real headless
Chromium per person (each its own profile: two people never share cookies)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from testing.helpers.servers import free_port
from tools.demo.iap import SIGNIN
from tools.demo.world import Demo

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Short timings so an idle cull happens within a test; the scheduler stays out of the way
# (its passes are every minute) and the tests call the culler when they mean to.
TEST_TIMINGS = {"idleSeconds": 12, "warnSeconds": 8, "orphanGraceSeconds": 30, "cullerSeconds": 60,
                "nodeSeconds": 1, "pullSeconds": 1, "activityReportSeconds": 1,
                "syncSeconds": 1, "stepSeconds": 0.05, "maxReplicas": 8}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    world = Demo("demo", port=free_port(), state_dir=tmp_path_factory.mktemp("demo"),
                 overrides=TEST_TIMINGS).start()
    yield world
    world.stop()


class Person:
    """One person at their own browser."""

    def __init__(self, demo: Demo, email: str):
        self.demo, self.email = demo, email
        os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch a driver
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1280,1000", "--disable-extensions"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(60)
        self.titles: list[str] = []

    def sign_in(self) -> None:
        self.driver.get(self.demo.url + "/")
        self.driver.find_element(By.ID, "email").send_keys(self.email)
        self.driver.find_element(By.ID, "signin").click()
        # The form's answer is a redirect to the page asked for: wait until the browser has
        # left the sign-in page, or a navigation the test makes next could race it.
        self.wait_for("the sign-in to finish", lambda: SIGNIN not in self.driver.current_url
                      and self.driver.execute_script("return document.readyState") == "complete",
                      timeout=30)
        self.titles.append(self.driver.title)

    def wait_for(self, what: str, condition, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = condition()
                if last:
                    return last
            except WebDriverException:
                pass
            title = self.driver.title
            if not self.titles or self.titles[-1] != title:
                self.titles.append(title)
            time.sleep(0.2)
        raise AssertionError(f"{self.email}: timed out waiting for {what}; titles seen: "
                             f"{self.titles}; page: {self.driver.page_source[:600]}")

    def webui(self, timeout: float = 60.0) -> None:
        """Wait, without reloading, until the WebUI's Generate button is on the page."""
        self.wait_for("the WebUI", lambda: self.driver.find_elements(By.ID, "generate"), timeout)

    def value(self, elem_id: str) -> str:
        return self.driver.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea").get_attribute("value")

    def generate(self, prompt: str, steps: int = 20, timeout: float = 60.0) -> str:
        box = self.driver.find_element(By.CSS_SELECTOR, "#prompt textarea")
        box.clear()
        box.send_keys(prompt)
        steps_box = self.driver.find_element(By.CSS_SELECTOR, "#steps input[type=number]")
        steps_box.clear()
        steps_box.send_keys(str(steps))
        self.driver.find_element(By.ID, "generate").click()
        return self.wait_for("a saved picture",
                             lambda: self.value("progress").startswith("saved") and self.value("progress"),
                             timeout)

    def saved_pictures(self) -> int:
        return len(self.driver.find_elements(By.CSS_SELECTOR, "#saved img"))

    def close(self) -> None:
        self.driver.quit()


@pytest.fixture
def people(demo):
    made: list[Person] = []

    def person(email: str) -> Person:
        made.append(Person(demo, email))
        return made[-1]

    yield person
    for p in made:
        p.close()


def identity_of(email: str) -> str:
    from tools.demo.iap import subject_of
    return "g-" + subject_of(email).split(":", 1)[1]


def person_folder(demo: Demo, email: str) -> Path:
    return demo.state_dir / "users" / identity_of(email)


def game_server_of(demo: Demo, email: str) -> dict | None:
    ident = identity_of(email)
    for gs in demo.emulator.game_servers(state="Allocated"):
        if gs["metadata"]["labels"].get("sdfleet.dev/identity") == ident:
            return gs
    return None

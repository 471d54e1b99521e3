"""What a person sees, in a real browser, on `make demo`'s machinery: the real router, Redis,
allocator, culler and pods' programs; IAP, the cluster and Stable Diffusion stood in."""

from __future__ import annotations

import os
import time

import psutil
import requests
from selenium.webdriver.common.by import By

from tests.demo.conftest import game_server_of, person_folder

WAITING_TITLE = "Starting your Stable Diffusion WebUI"


def test_two_people_each_get_their_own_webui_and_never_see_the_others_pictures(demo, people):
    ada, grace = people("ada@example.com"), people("grace@example.com")
    ada.sign_in()
    grace.sign_in()  # the buffer's one pod goes to one of them; the other waits for a node
    ada.webui()
    grace.webui()
    assert WAITING_TITLE in ada.titles + grace.titles, (ada.titles, grace.titles)
    assert "stand-in" in ada.driver.page_source and "not Stable Diffusion" in ada.driver.page_source
    assert "Local demo of sdfleet" in ada.driver.page_source  # the stand-in IAP says so

    ada_pod, grace_pod = game_server_of(demo, ada.email), game_server_of(demo, grace.email)
    assert ada_pod and grace_pod and ada_pod["metadata"]["name"] != grace_pod["metadata"]["name"]

    saved = ada.generate("ada's lighthouse")
    assert saved.startswith("saved outputs/txt2img-images/")
    grace.generate("grace's harbour")
    deadline = time.monotonic() + 20  # the user sync copies new files back every second
    while time.monotonic() < deadline and not (
            list(person_folder(demo, ada.email).rglob("*.png"))
            and list(person_folder(demo, grace.email).rglob("*.png"))):
        time.sleep(0.5)
    ada_files = {p.name for p in person_folder(demo, ada.email).rglob("*.png")}
    grace_files = {p.name for p in person_folder(demo, grace.email).rglob("*.png")}
    assert len(ada_files) == 1 and len(grace_files) == 1
    # each sees their own picture only, in their own gallery
    assert ada.saved_pictures() == 1 and grace.saved_pictures() == 1
    ada_pictures = [p.read_bytes() for p in person_folder(demo, ada.email).rglob("*.png")]
    grace_pictures = [p.read_bytes() for p in person_folder(demo, grace.email).rglob("*.png")]
    assert ada_pictures != grace_pictures

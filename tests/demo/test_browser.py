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


def test_a_150_mb_upload_reaches_the_persons_webui(demo, people, tmp_path):
    upload = tmp_path / "big-lora.safetensors"
    with open(upload, "wb") as out:
        out.truncate(150 * 1024 * 1024)
    lin = people("lin@example.com")
    lin.sign_in()
    lin.webui()
    lin.driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(upload))
    said = lin.wait_for("the upload", lambda: lin.value("uploaded"), timeout=120)
    assert said == f"big-lora.safetensors: {150 * 1024 * 1024} bytes"


def test_a_generation_streamed_over_the_websocket_keeps_the_session_past_the_idle_timeout(
        demo, people):
    mo = people("mo@example.com")
    mo.sign_in()
    mo.webui()
    pod = game_server_of(demo, mo.email)["metadata"]["name"]
    idle = demo.idle_seconds
    steps = int((idle + 8) / demo.demo.step_seconds)  # runs past the idle timeout
    started = time.monotonic()
    box = mo.driver.find_element(By.CSS_SELECTOR, "#steps input[type=number]")
    box.clear()
    box.send_keys(str(steps))
    mo.driver.find_element(By.ID, "generate").click()
    passes = 0
    while not mo.value("progress").startswith("saved"):
        assert time.monotonic() - started < idle + 60, mo.value("progress")
        demo.cull_now()  # nothing but the streamed progress says the person is there
        passes += 1
        time.sleep(2)
    assert time.monotonic() - started > idle and passes >= 3
    demo.cull_now()
    still = game_server_of(demo, mo.email)
    assert still and still["metadata"]["name"] == pod  # never culled while it streamed


def test_a_webui_restart_shows_the_restarting_page_and_comes_back(demo, people):
    kai = people("kai@example.com")
    kai.sign_in()
    kai.webui()
    pod_name = game_server_of(demo, kai.email)["metadata"]["name"]
    pod = demo.fleet.pods[pod_name][0]
    info = requests.get(f"http://127.0.0.1:{pod.supervisor_port}/info", timeout=5).json()
    os.kill(info["pid"], 9)  # the WebUI dies; its supervisor starts it again
    # Right after the death, Generate: Gradio gets the router's sentence, not "busy"
    kai.driver.find_element(By.ID, "generate").click()
    time.sleep(1)
    assert "currently busy" not in kai.driver.page_source
    kai.driver.get(demo.url + "/")
    kai.wait_for("the restarting page",
                 lambda: "Your WebUI is restarting" in kai.driver.page_source
                 or kai.driver.find_elements(By.ID, "generate"), timeout=20)
    kai.webui(timeout=60)  # the waiting page moves on by itself
    assert game_server_of(demo, kai.email)["metadata"]["name"] == pod_name  # same pod
    again = requests.get(f"http://127.0.0.1:{pod.supervisor_port}/info", timeout=5).json()
    assert again["restarts"] == 1 and again["pid"] != info["pid"]
    assert kai.generate("after the restart").startswith("saved")


def test_a_culled_session_comes_back_with_its_files(demo, people):
    noor = people("noor@example.com")
    noor.sign_in()
    noor.webui()
    first_pod = game_server_of(demo, noor.email)["metadata"]["name"]
    noor.generate("before the cull")
    noor.driver.get("about:blank")  # the person leaves
    deadline = time.monotonic() + demo.idle_seconds + 30
    while game_server_of(demo, noor.email) is not None:
        assert time.monotonic() < deadline, "the idle session was never culled"
        time.sleep(2)
        demo.cull_now()
    assert list(person_folder(demo, noor.email).rglob("*.png"))  # copied back on the way out
    noor.driver.get(demo.url + "/")
    noor.webui(timeout=90)
    assert game_server_of(demo, noor.email)["metadata"]["name"] != first_pod
    noor.wait_for("the picture made before the cull", lambda: noor.saved_pictures() == 1)


def test_make_demo_starts_serves_and_leaves_no_process_behind(tmp_path):
    import signal
    import subprocess
    import sys

    from testing.helpers.servers import free_port
    port = free_port()
    started = time.monotonic()
    demo = subprocess.Popen([sys.executable, "-m", "tools.demo", "--port", str(port),
                             "--state-dir", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in demo.stdout:
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            break
    assert f"http://127.0.0.1:{port}/" in "".join(lines)
    assert "ada@example.com" in "".join(lines) and "grace@example.com" in "".join(lines)
    session = requests.Session()
    session.post(f"http://127.0.0.1:{port}/_demo/signin",
                 data={"email": "ada@example.com", "next": "/"}, allow_redirects=False)
    while True:
        page = session.get(f"http://127.0.0.1:{port}/", headers={"Accept": "text/html"})
        if page.status_code == 200:
            break
        assert page.status_code == 503 and time.monotonic() - started < 60, page.text[:300]
        time.sleep(1)
    assert "stand-in" in page.text
    seconds_to_first_webui = time.monotonic() - started
    everything = psutil.Process(demo.pid).children(recursive=True)
    assert len(everything) >= 10  # redis, functions, verifier, nginx, pods' programs, ...
    demo.send_signal(signal.SIGINT)
    rest = demo.communicate(timeout=60)[0]
    assert demo.returncode == 0, rest
    assert "stopped; nothing is left running" in rest
    left = [p for p in everything if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [(p.pid, p.cmdline()[:3]) for p in left]
    assert seconds_to_first_webui < 60


def test_the_webui_page_warns_before_an_idle_session_ends_and_keep_working_keeps_it(demo, people):
    """Idle timeout 12 s and a warning 8 s before (the fast clock of a 30-minute timeout and a
    10-minute warning): the banner shows in the WebUI page itself, says why, and its button
    keeps the session; the culler then finds it active."""
    ada = people("ada@example.com")
    ada.sign_in()
    ada.webui()
    banner = ada.wait_for("the banner", lambda: [e for e in ada.driver.find_elements(
        By.ID, "sdfleet-session-banner") if e.is_displayed()], timeout=20)[0]
    assert "Your session ends in 1 minute" in banner.text and "idle" in banner.text
    shots = os.environ.get("SDFLEET_SCREENSHOTS")
    if shots:  # README's picture: `SDFLEET_SCREENSHOTS=docs/images pytest tests/demo`
        ada.driver.save_screenshot(os.path.join(shots, "session-banner.png"))
    assert ada.driver.find_elements(By.ID, "generate")              # the WebUI is still there
    ada.driver.find_element(By.ID, "sdfleet-keep-working").click()
    ada.wait_for("the banner to go", lambda: not ada.driver.find_elements(
        By.ID, "sdfleet-session-banner"), timeout=10)
    demo.cull_now()
    assert game_server_of(demo, ada.email) is not None              # kept, not culled
    # Left alone, it warns again and then ends.
    ada.wait_for("the banner again", lambda: ada.driver.find_elements(
        By.ID, "sdfleet-session-banner"), timeout=20)

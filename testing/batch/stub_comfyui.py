"""A stand-in for ComfyUI's HTTP API, run as a real HTTP server (child process).

It is the agent's peer, not the code under test. It speaks ComfyUI's own routes with their
shapes (comfyanonymous/ComfyUI server.py at 005f3ba; execution.py PromptQueue):

    GET  /system_stats            {"system": {...}, "devices": [...]}
    POST /prompt {"prompt": {...}, "client_id"}
                                  200 {"prompt_id", "number", "node_errors": {}}; 400
                                  {"error": {...}, "node_errors": {...}} when validation fails
                                  (unknown class_type, missing input, broken link, a value not
                                  in a node's list such as ckpt_name, no output node)
    GET  /queue                   {"queue_running": [[number, id, prompt, extra, outputs]],
                                   "queue_pending": [...]}
    POST /queue {"delete": [...]} removes pending prompts
    GET  /history/{prompt_id}     {} until done, then {id: {"prompt": [...], "outputs": {node:
                                  {"images": [{"filename", "subfolder", "type": "output"}]}},
                                  "status": {"status_str", "completed", "messages"}}}
    GET  /view?filename=&subfolder=&type=   the file, 404 if absent, 400 for '..' or '/'
    POST /upload/image (multipart: image, type, overwrite)   {"name", "subfolder", "type"}
    POST /interrupt

Test controls: POST /_stub/config {"runSeconds": 0.2, "mode": "success"|"error",
"healthy": true, "checkpoints": [...]}, GET /_stub/calls (every accepted prompt).

    python testing/batch/stub_comfyui.py --port 8188
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from stub_webui import png  # noqa: E402 (same folder; run as a script)

CHECKPOINTS = ["v1-5-pruned-emaonly.safetensors", "sdxl-base-1.0.safetensors"]
SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast",
            "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde",
            "dpmpp_3m_sde", "ddim", "uni_pc"]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform"]
# Required inputs of the nodes the stub knows (nodes.py INPUT_TYPES "required").
NODES = {
    "CheckpointLoaderSimple": ["ckpt_name"],
    "CLIPTextEncode": ["text", "clip"],
    "EmptyLatentImage": ["width", "height", "batch_size"],
    "KSampler": ["model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive",
                 "negative", "latent_image", "denoise"],
    "VAEDecode": ["samples", "vae"],
    "VAEEncode": ["pixels", "vae"],
    "LoadImage": ["image"],
    "RepeatLatentBatch": ["samples", "amount"],
    "SaveImage": ["images", "filename_prefix"],
}
OUTPUT_NODES = {"SaveImage"}


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.run_seconds = 0.2
        self.mode = "success"
        self.healthy = True
        self.checkpoints = list(CHECKPOINTS)
        self.number = 0
        self.pending: list[list] = []
        self.running: list | None = None
        self.history: dict[str, dict] = {}
        self.outputs: dict[tuple[str, str], bytes] = {}  # (type, filename) -> bytes
        self.inputs: dict[str, bytes] = {}
        self.calls: list[dict] = []
        self.interrupts = 0


STATE = State()


def validate(prompt: dict) -> tuple[dict | None, dict]:
    """(error or None, node_errors), like execution.validate_prompt."""
    if not isinstance(prompt, dict) or not prompt:
        return {"type": "invalid_prompt", "message": "Cannot execute because the prompt is empty"}, {}
    node_errors: dict = {}
    for node_id, node in prompt.items():
        kind = node.get("class_type") if isinstance(node, dict) else None
        if kind not in NODES:
            return {"type": "invalid_prompt",
                    "message": f"Cannot execute because node {kind} does not exist."}, {}
        errors = []
        inputs = node.get("inputs") or {}
        for name in NODES[kind]:
            value = inputs.get(name)
            if value is None:
                errors.append({"type": "required_input_missing", "message": name})
            elif isinstance(value, list) and (len(value) != 2 or value[0] not in prompt):
                errors.append({"type": "bad_linked_input", "message": name})
        checks = {("CheckpointLoaderSimple", "ckpt_name"): STATE.checkpoints,
                  ("KSampler", "sampler_name"): SAMPLERS, ("KSampler", "scheduler"): SCHEDULERS,
                  ("LoadImage", "image"): list(STATE.inputs)}
        for (node_kind, name), allowed in checks.items():
            if kind == node_kind and name in inputs and inputs[name] not in allowed:
                errors.append({"type": "value_not_in_list",
                               "message": f"{name}: '{inputs[name]}' not in {allowed}"})
        if errors:
            node_errors[node_id] = {"errors": errors, "class_type": kind}
    if node_errors:
        return {"type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation"}, node_errors
    if not any(node["class_type"] in OUTPUT_NODES for node in prompt.values()):
        return {"type": "prompt_no_outputs", "message": "Prompt has no outputs"}, {}
    return None, {}


def execute_forever() -> None:
    while True:
        with STATE.wake:
            while not STATE.pending:
                STATE.wake.wait()
            item = STATE.pending.pop(0)
            STATE.running = item
            seconds, mode = STATE.run_seconds, STATE.mode
        time.sleep(seconds)
        number, prompt_id, prompt, _extra, _outputs = item
        outputs, images = {}, {}
        if mode == "success":
            for node_id, node in prompt.items():
                if node["class_type"] != "SaveImage":
                    continue
                text = prompt_text(prompt)
                prefix = node["inputs"]["filename_prefix"]
                count = batch_of(prompt)
                refs = []
                for i in range(count):
                    name = f"{prefix}_{number:05}_{i}_.png"
                    images[("output", name)] = png(f"{text}#{i}")
                    refs.append({"filename": name, "subfolder": "", "type": "output"})
                outputs[node_id] = {"images": refs}
            status = {"status_str": "success", "completed": True,
                      "messages": [["execution_start", {"prompt_id": prompt_id}],
                                   ["execution_success", {"prompt_id": prompt_id}]]}
        else:
            status = {"status_str": "error", "completed": False,
                      "messages": [["execution_error", {
                          "prompt_id": prompt_id, "node_type": "KSampler",
                          "exception_message": "CUDA out of memory"}]]}
        with STATE.lock:
            STATE.outputs.update(images)
            STATE.history[prompt_id] = {"prompt": item, "outputs": outputs, "status": status,
                                        "meta": {}}
            STATE.running = None


def prompt_text(prompt: dict) -> str:
    sampler = next(n for n in prompt.values() if n["class_type"] == "KSampler")
    positive = prompt[sampler["inputs"]["positive"][0]]
    return positive["inputs"]["text"]


def batch_of(prompt: dict) -> int:
    for node in prompt.values():
        if node["class_type"] == "EmptyLatentImage":
            return int(node["inputs"]["batch_size"])
        if node["class_type"] == "RepeatLatentBatch":
            return int(node["inputs"]["amount"])
    return 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _raw(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/system_stats":
            if not STATE.healthy:
                return self._send(503, {})
            return self._send(200, {"system": {"os": "posix", "comfyui_version": "stub"},
                                    "devices": [{"name": "stub", "type": "cuda"}]})
        if url.path == "/queue":
            with STATE.lock:
                running = [STATE.running] if STATE.running else []
                return self._send(200, {"queue_running": running,
                                        "queue_pending": list(STATE.pending)})
        if url.path.startswith("/history/"):
            prompt_id = url.path[len("/history/"):]
            with STATE.lock:
                entry = STATE.history.get(prompt_id)
            return self._send(200, {prompt_id: entry} if entry else {})
        if url.path == "/view":
            name = query.get("filename", "")
            if not name or name[0] == "/" or ".." in name:
                return self._send(400, b"", "text/plain")
            with STATE.lock:
                data = STATE.outputs.get((query.get("type", "output"), name))
            return self._send(200, data, "image/png") if data else self._send(404, b"", "text/plain")
        if url.path == "/_stub/calls":
            with STATE.lock:
                return self._send(200, {"calls": STATE.calls, "interrupts": STATE.interrupts})
        self._send(404, {"error": "not found"})

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path == "/upload/image":
            return self._upload()
        body = json.loads(self._raw() or b"{}")
        if url.path == "/_stub/config":
            with STATE.lock:
                STATE.run_seconds = float(body.get("runSeconds", STATE.run_seconds))
                STATE.mode = body.get("mode", STATE.mode)
                STATE.healthy = bool(body.get("healthy", STATE.healthy))
                STATE.checkpoints = body.get("checkpoints", STATE.checkpoints)
            return self._send(200, {"ok": True})
        if url.path == "/prompt":
            if "prompt" not in body:
                return self._send(400, {"error": "no prompt", "node_errors": []})
            with STATE.lock:
                error, node_errors = validate(body["prompt"])
            if error:
                return self._send(400, {"error": error, "node_errors": node_errors})
            prompt_id = str(uuid.uuid4())
            with STATE.wake:
                STATE.number += 1
                outputs = [k for k, n in body["prompt"].items() if n["class_type"] in OUTPUT_NODES]
                STATE.pending.append([STATE.number, prompt_id, body["prompt"],
                                      {"client_id": body.get("client_id")}, outputs])
                STATE.calls.append({"prompt_id": prompt_id, "prompt": body["prompt"]})
                STATE.wake.notify()
                number = STATE.number
            return self._send(200, {"prompt_id": prompt_id, "number": number, "node_errors": {}})
        if url.path == "/queue":
            with STATE.lock:
                delete = set(body.get("delete") or [])
                STATE.pending = [p for p in STATE.pending if p[1] not in delete]
            return self._send(200, b"", "text/plain")
        if url.path == "/interrupt":
            with STATE.lock:
                STATE.interrupts += 1
            return self._send(200, b"", "text/plain")
        self._send(404, {"error": "not found"})

    def _upload(self):
        raw = self._raw()
        message = BytesParser(policy=default_policy).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
        fields = {part.get_param("name", header="content-disposition"): part
                  for part in message.iter_parts()}
        image = fields.get("image")
        if image is None or not image.get_filename():
            return self._send(400, b"", "text/plain")
        name = image.get_filename()
        with STATE.lock:
            STATE.inputs[name] = image.get_payload(decode=True)
        kind = fields["type"].get_content() if "type" in fields else "input"
        self._send(200, {"name": name, "subfolder": "", "type": kind.strip()})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    threading.Thread(target=execute_forever, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()

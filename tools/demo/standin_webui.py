"""The demo's stand-in for a Stable Diffusion WebUI: a Gradio app that draws a picture from
the prompt on the CPU in about a second. It is not Stable Diffusion, and its page says so.

    python standin_webui.py --port 7870 --data-dir /scratch/home/automatic1111

It runs on the Gradio of A1111 v1.10 (3.41.2, whose queue streams over a WebSocket) in its
own virtual environment (tools/demo/standin-requirements.txt), as a framework runs in its
own venv in the image, and speaks the part of A1111's API the pod's supervisor uses:
``GET /sdapi/v1/sd-models`` (is it up) and ``POST /sdapi/v1/txt2img`` (can it generate).
Pictures are saved where A1111 saves them (``<data-dir>/outputs/txt2img-images/<date>/``),
the folder the user-sync sidecar copies back to the person's own folder.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import io
import time
from pathlib import Path

import gradio as gr
from fastapi import FastAPI
from PIL import Image, ImageDraw
from pydantic import BaseModel

SIZE = 384
NOTICE = ("**This is the sdfleet demo's stand-in WebUI, not Stable Diffusion.** It draws a "
          "pattern from your prompt on the CPU so the platform around it (sign-in, waiting "
          "page, your own pod, your files, idle culling) can be tried on one machine.")


class Txt2Img(BaseModel):
    prompt: str = ""
    seed: int = 1
    width: int = 64
    height: int = 64


def draw(prompt: str, seed: int, size: int = SIZE) -> Image.Image:
    """A picture that depends only on the prompt and the seed."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    image = Image.new("RGB", (size, size), tuple(digest[0:3]))
    pen = ImageDraw.Draw(image)
    for i in range(12):
        a, b, c, d = (digest[(4 * i + k) % 32] * size // 255 for k in range(4))
        colour = tuple(digest[(i * 3 + k) % 32] for k in range(3))
        pen.ellipse((min(a, c), min(b, d), max(a, c) + 8, max(b, d) + 8), outline=colour, width=4)
    pen.rectangle((0, size - 28, size, size), fill=(0, 0, 0))
    pen.text((8, size - 22), f"stand-in: {prompt[:48]}", fill=(255, 255, 255))
    return image


def save(image: Image.Image, outputs: Path, seed: int) -> Path:
    folder = outputs / "txt2img-images" / dt.date.today().isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    number = len(list(folder.glob("*.png")))
    path = folder / f"{number:05d}-{seed}.png"
    image.save(path)
    return path


def saved_pictures(outputs: Path) -> list[str]:
    return sorted((str(p) for p in outputs.glob("txt2img-images/*/*.png")), reverse=True)


def build(data_dir: Path, step_seconds: float) -> gr.Blocks:
    outputs = data_dir / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)

    def generate(prompt: str, steps: int, seed: int):
        """A generator: Gradio streams each yield over the queue's WebSocket."""
        steps = int(steps)
        for step in range(1, steps + 1):
            time.sleep(step_seconds)
            yield None, f"step {step}/{steps}", gr.update()
        image = draw(prompt, int(seed))
        path = save(image, outputs, int(seed))
        yield image, f"saved {path.relative_to(data_dir)}", saved_pictures(outputs)

    with gr.Blocks(title="sdfleet demo: stand-in WebUI", analytics_enabled=False) as blocks:
        gr.Markdown("# Stand-in WebUI\n" + NOTICE)
        with gr.Row():
            prompt = gr.Textbox(label="Prompt", value="a lighthouse at dusk", elem_id="prompt")
            steps = gr.Slider(1, 2000, value=20, step=1, label="Steps", elem_id="steps")
            seed = gr.Number(value=1, precision=0, label="Seed", elem_id="seed")
        button = gr.Button("Generate", variant="primary", elem_id="generate")
        progress = gr.Textbox(label="Progress", interactive=False, elem_id="progress")
        picture = gr.Image(label="Picture", type="pil", elem_id="picture")
        gallery = gr.Gallery(label="Your saved pictures", value=saved_pictures(outputs),
                             elem_id="saved")
        upload = gr.File(label="Upload a file (e.g. a LoRA)", elem_id="upload")
        uploaded = gr.Textbox(label="Uploaded", interactive=False, elem_id="uploaded")
        button.click(generate, [prompt, steps, seed], [picture, progress, gallery])
        upload.upload(lambda f: f"{Path(f.name).name}: {Path(f.name).stat().st_size} bytes",
                      upload, uploaded)
        blocks.load(lambda: saved_pictures(outputs), None, gallery)
    blocks.queue(concurrency_count=2)
    return blocks


def add_api(app: FastAPI) -> None:
    """The part of A1111's API the supervisor uses, on Gradio's own app as A1111 adds it."""

    @app.get("/sdapi/v1/sd-models")
    def sd_models():
        return [{"title": "stand-in", "model_name": "stand-in", "filename": "(drawn on the CPU)"}]

    @app.post("/sdapi/v1/txt2img")
    def txt2img(request: Txt2Img):
        buffer = io.BytesIO()
        draw(request.prompt, request.seed, max(64, min(request.width, SIZE))).save(buffer, "PNG")
        return {"images": [base64.b64encode(buffer.getvalue()).decode()], "info": "{}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--step-seconds", type=float, default=0.05)
    args = parser.parse_args()
    blocks = build(args.data_dir, args.step_seconds)
    # As A1111 starts it (webui.py): launch() makes Gradio's queue call its predictions on
    # the local URL; an app mounted by hand would call back through the public URL it first
    # saw, which in a pod is the router behind IAP.
    app, local_url, _ = blocks.launch(server_name=args.host, server_port=args.port,
                                      prevent_thread_lock=True, show_api=False, quiet=True)
    add_api(app)
    print(f"Running on local URL:  {local_url}", flush=True)
    blocks.block_thread()


if __name__ == "__main__":
    main()

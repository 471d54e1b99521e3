"""Bake what a framework fetches from the Hugging Face Hub at first use, and prove it loads
offline. Run at build time with the framework's own venv (its huggingface_hub, transformers):

    python bake_hub_files.py download openai/clip-vit-large-patch14
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python bake_hub_files.py verify openai/clip-vit-large-patch14

Files go to the Hub cache under HF_HOME, where the framework's own from_pretrained looks.
"""

import sys

# Tokenizer, text-encoder config and their special tokens: no weights (the checkpoint has them).
PATTERNS = ["*.json", "*.txt"]


def main(action: str, repo: str) -> int:
    if action == "download":
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo, allow_patterns=PATTERNS)
        print(f"baked {repo} into {path}")
        return 0
    if action == "verify":
        from transformers import CLIPTextConfig, CLIPTokenizer

        CLIPTokenizer.from_pretrained(repo)
        CLIPTextConfig.from_pretrained(repo)
        print(f"{repo}: tokenizer and config load offline")
        return 0
    print(f"unknown action {action!r}: download or verify", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

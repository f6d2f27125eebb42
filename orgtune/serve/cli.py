"""`orgtune serve`: parse adapters, build the engine, run uvicorn (or hand the job to vLLM).

orgtune serve --adapter halvo=runs/first --adapter policy=runs/policy --port 8000
orgtune serve --gguf runs/first/export/model-q4_k_m.gguf
orgtune serve --engine vllm --model qwen2.5-3b --adapter halvo=runs/first      # prints the vLLM command
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

from orgtune.errors import OrgtuneError


def parse_adapters(specs: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise OrgtuneError(f"--adapter {spec!r}: expected NAME=RUN_DIR", fix="e.g. --adapter halvo=runs/first")
        if name in out:
            raise OrgtuneError(f"--adapter {name}: given twice", fix="use one name per adapter")
        out[name.strip()] = Path(path.strip())
    return out


def vllm_command(model: str, adapters: dict[str, Path], host: str, port: int, api_key: str | None) -> list[str]:
    """vLLM serves the same API on a GPU fleet: the base from the hub (or a folder) and each run's adapter."""
    from orgtune.models.presets import find_preset
    from orgtune.serve.engine import _adapter_folder

    preset = find_preset(model)
    base = preset.hub_id if preset else model
    cmd = ["vllm", "serve", base, "--host", host, "--port", str(port), "--served-model-name", model]
    if adapters:
        ranks = []
        mods = []
        for name, path in adapters.items():
            folder = _adapter_folder(path)
            ranks.append(int(json.loads((folder / "adapter_config.json").read_text()).get("r", 16)))
            mods.append(f"{name}={folder.resolve()}")
        cmd += [
            "--enable-lora",
            "--max-lora-rank",
            str(max(8, *ranks)),
            "--max-loras",
            str(len(adapters)),
            "--lora-modules",
            *mods,
        ]
    if api_key:
        cmd += ["--api-key", api_key]
    return cmd


def serve(
    *,
    model: str,
    adapters: list[str],
    gguf: Path | None,
    host: str,
    port: int,
    api_key: str | None,
    admin_key: str | None,
    max_batch: int,
    max_tokens_limit: int,
    device: str,
    engine: str,
    launch: bool,
    max_body_mb: float = 4,
    log=print,
) -> None:
    named = parse_adapters(adapters)
    if engine == "vllm":
        cmd = vllm_command(model, named, host, port, api_key)
        text = " ".join(shlex.quote(c) for c in cmd)
        if not launch:
            print(text)
            return
        if shutil.which("vllm") is None:
            raise OrgtuneError("vLLM is not installed here", fix=f"on a GPU machine with vLLM run:\n  {text}")
        raise SystemExit(subprocess.call(cmd))
    if engine != "hf":
        raise OrgtuneError(f"--engine {engine!r}: unknown", fix="use hf or vllm")
    import uvicorn

    from orgtune.serve.app import create_app

    if gguf is not None:
        if named:
            raise OrgtuneError(
                "a GGUF server holds one model; adapters are served with the HF engine",
                fix="drop --adapter, or serve --model with --adapter",
            )
        from orgtune.serve.engine import LlamaCppEngine

        eng = LlamaCppEngine(gguf)
    else:
        from orgtune.serve.engine import HFEngine

        eng = HFEngine(model, named, device=device, max_batch=max_batch, log=log)
    app = create_app(
        eng, api_key=api_key, admin_key=admin_key, max_tokens_limit=max_tokens_limit, max_body_mb=max_body_mb
    )
    log(f"serving {', '.join(eng.names())} on http://{host}:{port}/v1 ({eng.kind})")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)

"""Train the notebook's default ViT at full length in one CPU precision and record what it reached.

    python benchmarks/full_run.py --precision bfloat16  # or float32: benchmarks/results/full_run_<precision>.json

The run takes the settings of the notebook's parameters cell (30 epochs, seed 0, ...) and trains with the notebook's
own train_new and train(), as the notebook trains: eager (the notebook does not compile), the attention path by
device. It saves no checkpoint (nothing under checkpoints/ changes). The result file holds the command, the machine
(CPU model and flags), the date, the validation accuracy of the kept epoch, the training minutes, and the seconds
of each epoch as train() logs them (EpochLog: the epoch's training and its validation on 5,000 images). Files made
by earlier code also hold images_per_s, training images per second with validation excluded; the present train()
no longer times its training apart from its validation, so that field is gone.
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from definitions import load_definitions, mnist_data_dir, notebook_parameters  # noqa: E402


def cpu_description() -> dict:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {"model": fields.get("model name", platform.processor()), "threads": torch.get_num_threads(),
            "flags": [flag for flag in wanted if flag in fields.get("flags", "").split()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=["float32", "bfloat16"], required=True)
    parser.add_argument("--epochs", type=int, default=None, help="fewer epochs than the notebook's, for a smoke test")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    nb, p = load_definitions(), notebook_parameters()
    nb.CPU_PRECISION = args.precision
    device = torch.device("cpu")
    data = nb.load_mnist(mnist_data_dir(), val_size=p["VAL_SIZE"], train_subset=p["TRAIN_SUBSET"], seed=p["SEED"])
    config = nb.ViTConfig(patch_size=p["PATCH_SIZE"], embed_dim=p["EMBED_DIM"], depth=p["DEPTH"],
                          num_heads=p["NUM_HEADS"], mlp_ratio=p["MLP_RATIO"])  # as the notebook builds it
    train_settings = dict(epochs=args.epochs or p["EPOCHS"], batch_size=p["BATCH_SIZE"], lr=p["LEARNING_RATE"],
                          weight_decay=p["WEIGHT_DECAY"], warmup_epochs=p["WARMUP_EPOCHS"],
                          label_smoothing=p["LABEL_SMOOTHING"], grad_clip=p["GRAD_CLIP"], augment=p["AUGMENT"],
                          ema_decay=p["EMA_DECAY"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        nb.FIGURE_DIR = Path(scratch)
        model, history = nb.train_new(f"ViT ({args.precision})", lambda: nb.VisionTransformer(config),
                                      {"seed": p["SEED"]}, train_settings, data)
    minutes = (time.perf_counter() - start) / 60
    val_loss, val_acc = nb.evaluate(model, data.x_val, data.y_val, data)
    result = {"command": "python benchmarks/full_run.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d"),
              "cpu": cpu_description(), "torch": torch.__version__, "device": nb.device_name(device),
              "training": f"{history['training']}, eager", "epochs": train_settings["epochs"],
              "best_epoch": history["best_epoch"], "val_acc": val_acc, "val_loss": val_loss,
              "minutes": round(minutes, 1), "seconds_per_epoch": [round(s, 1) for s in history["seconds"]]}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"full_run_{args.precision}{'' if args.epochs is None else f'_{args.epochs}_epochs'}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"validation accuracy {val_acc:.2%} (epoch {history['best_epoch']}), {minutes:.1f} min -> {path}")


if __name__ == "__main__":
    main()

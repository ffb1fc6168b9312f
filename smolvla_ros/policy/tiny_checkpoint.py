"""A tiny (small, or full-size), randomly initialised SmolVLA checkpoint, made fully offline.

``smolvla-ros make-test-checkpoint DIR`` writes a real LeRobot checkpoint (config.json,
model.safetensors, policy_preprocessor/postprocessor with their state files) whose VLM is a
local tiny SmolVLM: a llama text model and a SigLIP vision model of a few thousand
parameters each, a byte-level BPE tokenizer trained on the spot with the special tokens
SmolVLM's processor needs, and made-up normalisation statistics for SO-101 features. It
loads through exactly the code path of ``lerobot/smolvla_base``, so tests and the offline
demo exercise the real thing, only smaller; its actions are meaningless.

``--like-smolvla-base`` copies smolvla_base's feature layout (cameras camera1..3 declared
at 3x256x256, 6-dim state and action); ``--rename-map front=camera1,...`` saves a rename
map in the preprocessor, as ``lerobot-train --rename_map`` does for a fine-tune of it.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
from pathlib import Path

SO101_STATE_DIM = 6
SMOLVLA_BASE_CAMERAS = ("camera1", "camera2", "camera3")  # lerobot/smolvla_base's config.json
SMOLVLA_BASE_IMAGE_SHAPE = (256, 256)
IMAGE_PREFIX = "observation.images."
VLM_FOLDER = "vlm"  # inside the checkpoint, so the folder is self-contained
CORPUS = [
    "pick up the cube and place it in the box", "move the arm to the left", "open the gripper",
    "stack the red block on the blue block", "put the pen in the cup", "push the ball forward",
    "grasp the yellow sponge", "fold the cloth", "close the drawer", "wave hello",
]


def _train_tokenizer():
    """A byte-level BPE tokenizer with SmolVLM's special tokens (transformers 5 style)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "<unk>", "<|im_start|>", "<end_of_utterance>",
               "<fake_token_around_image>", "<image>", "<global-img>"]
    special += [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS * 10, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>",
        bos_token="<|im_start|>", eos_token="<end_of_utterance>",
        extra_special_tokens={
            "fake_image_token": "<fake_token_around_image>", "image_token": "<image>",
            "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>",
        })


# The VLM's shape: tiny for tests; small, a few million parameters a 2-core CPU trains in
# minutes (bench/closed_loop.py); or SmolVLM2-500M's (what lerobot/smolvla_base uses) for
# benchmarks of the real architecture with random weights.
TINY_VLM = dict(
    text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16),
    vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                image_size=32, patch_size=8),
    scale_factor=2, vocab_size=None, num_vlm_layers=2)
SMALL_VLM = dict(
    text=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
              num_key_value_heads=2, head_dim=32),
    vision=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                image_size=64, patch_size=8),
    scale_factor=2, vocab_size=None, num_vlm_layers=4)
SMOLVLM2_500M = dict(
    text=dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
              num_key_value_heads=5, head_dim=64, rope_theta=100000.0),
    vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                num_attention_heads=12, image_size=512, patch_size=16),
    scale_factor=4, vocab_size=49280, num_vlm_layers=16)
SIZES = {"tiny": TINY_VLM, "small": SMALL_VLM, "full": SMOLVLM2_500M}


def vlm_shape(size: str, vision_pixels: int | None = None) -> dict:
    """``SIZES[size]``, with a ``vision_pixels`` square vision input if given. The pixel
    shuffle grows with it, so each image is still as many tokens for the text model: sharper
    images (a 4 cm cube is ~3 px across the front camera at 64) for the vision encoder's cost only."""
    shape = copy.deepcopy(SIZES[size])
    if vision_pixels:
        base = shape["vision"]["image_size"]
        if vision_pixels % base:
            raise ValueError(f"vision input {vision_pixels} px: must be a multiple of the {size} "
                             f"size's {base} px")
        shape["vision"]["image_size"] = vision_pixels
        shape["scale_factor"] *= vision_pixels // base
    return shape


def write_vlm(folder: Path, shape: dict) -> None:
    """Config, tokenizer and processor of a SmolVLM of the given shape; weights are never
    needed (SmolVLA builds the VLM with random weights when load_vlm_weights is False)."""
    from transformers import SmolVLMConfig, SmolVLMImageProcessor, SmolVLMProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    image_size, patch_size = shape["vision"]["image_size"], shape["vision"]["patch_size"]
    scale_factor = shape["scale_factor"]
    if (image_size // patch_size) % scale_factor:
        raise ValueError("(image_size / patch_size) must be a multiple of the scale factor")
    tokenizer = _train_tokenizer()
    SmolVLMConfig(
        text_config=dict(model_type="llama", vocab_size=shape["vocab_size"] or len(tokenizer),
                         max_position_embeddings=8192, pad_token_id=tokenizer.pad_token_id,
                         rms_norm_eps=1e-5, **shape["text"]),
        vision_config=shape["vision"],
        scale_factor=scale_factor, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
    ).save_pretrained(folder)
    size = {"longest_edge": image_size}
    SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(size=size, max_image_size=size, do_image_splitting=False),
        video_processor=SmolVLMVideoProcessor(size=size, max_image_size=size),
        tokenizer=tokenizer,
        image_seq_len=(image_size // patch_size) ** 2 // scale_factor**2,
    ).save_pretrained(folder)


def parse_rename_map(text: str) -> dict[str, str]:
    """``front=camera1,wrist=camera2`` as LeRobot's rename_map: full observation keys,
    dataset name -> the checkpoint's name (a bare name means observation.images.<name>)."""
    def key(name: str) -> str:
        return name if name.startswith("observation.") else IMAGE_PREFIX + name

    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(pair) != 2 or not all(part.strip() for part in pair) for pair in pairs):
        raise ValueError(f"rename map {text!r}: expected dataset_name=checkpoint_name,...")
    return {key(source.strip()): key(target.strip()) for source, target in pairs}


def make_test_checkpoint(folder: Path, cameras: tuple[str, ...] = ("front", "wrist"),
                         image_shape: tuple[int, int] = (48, 64), seed: int = 0,
                         full_size: bool = False, rename_map: dict[str, str] | None = None,
                         size: str = "tiny", vision_pixels: int | None = None) -> Path:
    """Write the checkpoint into ``folder`` (replaced if it exists); returns it.
    ``size``: tiny, small, or full (= ``full_size``): SmolVLA's real architecture (450 M
    parameters); random weights whichever. ``vision_pixels``: see ``vlm_shape``.
    ``rename_map``: saved in the preprocessor's rename step (dataset key -> checkpoint key),
    as lerobot-train saves its ``--rename_map``; its targets must be declared inputs."""
    import torch
    from lerobot.configs import FeatureType, PolicyFeature
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    inputs_declared = {"observation.state", *(IMAGE_PREFIX + name for name in cameras)}
    unknown = sorted(set((rename_map or {}).values()) - inputs_declared)
    if unknown:
        raise ValueError(f"rename map targets {unknown} are not inputs of the checkpoint "
                         f"({', '.join(sorted(inputs_declared))})")
    folder = Path(folder).resolve()
    shutil.rmtree(folder, ignore_errors=True)
    vlm = folder / VLM_FOLDER
    vlm.mkdir(parents=True)
    shape = vlm_shape("full" if full_size else size, vision_pixels)
    write_vlm(vlm, shape)
    image_size = shape["vision"]["image_size"]

    inputs = {"observation.state": PolicyFeature(FeatureType.STATE, (SO101_STATE_DIM,))}
    for name in cameras:
        inputs[f"observation.images.{name}"] = PolicyFeature(FeatureType.VISUAL, (3, *image_shape))
    config = SmolVLAConfig(
        vlm_model_name=str(vlm), load_vlm_weights=False, num_vlm_layers=shape["num_vlm_layers"],
        input_features=inputs,
        output_features={"action": PolicyFeature(FeatureType.ACTION, (SO101_STATE_DIM,))},
        resize_imgs_with_padding=(image_size, image_size), device="cpu", push_to_hub=False,
    )
    torch.manual_seed(seed)
    policy = SmolVLAPolicy(config)
    # Plausible SO-101 statistics in LeRobot units (degrees; gripper 0..100).
    mean = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 30.0])
    std = torch.tensor([30.0, 30.0, 30.0, 30.0, 60.0, 20.0])
    stats = {"observation.state": {"mean": mean, "std": std}, "action": {"mean": mean, "std": std}}
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=stats)
    if rename_map:
        # lerobot-train passes --rename_map as the override {"rename_observations_processor":
        # {"rename_map": ...}} of this step, then saves the pipeline: the same state.
        rename = next(step for step in preprocessor.steps
                      if type(step).__name__ == "RenameObservationsProcessorStep")
        rename.rename_map = dict(rename_map)
    policy.save_pretrained(folder)
    preprocessor.save_pretrained(folder)
    postprocessor.save_pretrained(folder)
    return folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="where to write the checkpoint (replaced)")
    parser.add_argument("--cameras", default=None,
                        help="comma-separated camera names (observation.images.<name>); default "
                             "front,wrist, or camera1,camera2,camera3 with --like-smolvla-base")
    parser.add_argument("--image-size", default=None,
                        help="declared camera image size, HEIGHTxWIDTH; default 48x64, or "
                             "256x256 with --like-smolvla-base")
    parser.add_argument("--like-smolvla-base", action="store_true",
                        help="lerobot/smolvla_base's features: cameras camera1..3 (3x256x256), "
                             "6-dim state and action")
    parser.add_argument("--rename-map", default="", metavar="DATASET=CHECKPOINT,...",
                        help="save this rename map in the preprocessor, as lerobot-train "
                             "--rename_map does for a fine-tune, e.g. front=camera1,wrist=camera2")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--size", choices=tuple(SIZES), default="tiny",
                        help="tiny (tests), small (trains in minutes on a CPU) or full "
                             "(SmolVLA's real 450M-parameter architecture, ~1.8 GB)")
    parser.add_argument("--full-size", action="store_true", help="the same as --size full")
    parser.add_argument("--vision-pixels", type=int, default=None, metavar="N",
                        help="the vision encoder's input, NxN pixels (a multiple of the size's: "
                             "tiny 32, small 64); as many tokens per image, sharper")


def run(args: argparse.Namespace) -> int:
    base = args.like_smolvla_base
    cameras_text = args.cameras or (",".join(SMOLVLA_BASE_CAMERAS) if base else "front,wrist")
    size_text = args.image_size or ("x".join(map(str, SMOLVLA_BASE_IMAGE_SHAPE)) if base else "48x64")
    height, width = (int(v) for v in size_text.lower().split("x"))
    cameras = tuple(name.strip() for name in cameras_text.split(",") if name.strip())
    size = "full" if args.full_size else args.size
    try:
        rename_map = parse_rename_map(args.rename_map)
        folder = make_test_checkpoint(args.folder, cameras, (height, width), args.seed,
                                      rename_map=rename_map, size=size, vision_pixels=args.vision_pixels)
    except ValueError as error:
        raise SystemExit(f"make-test-checkpoint: {error}") from None
    renamed = ", ".join(f"{source.removeprefix(IMAGE_PREFIX)} -> {target.removeprefix(IMAGE_PREFIX)}"
                        for source, target in rename_map.items())
    renamed = f"; rename map {renamed}" if renamed else ""
    pixels = json.loads((folder / "config.json").read_text())["resize_imgs_with_padding"][0]
    print(f"{'full-size' if size == 'full' else size} SmolVLA test checkpoint (random weights, "
          f"cameras {', '.join(cameras)}, vision input {pixels}x{pixels}{renamed}) written to {folder}")
    return 0

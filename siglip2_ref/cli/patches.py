"""`siglip2-ref patches`: a PNG of how an image is resized and cut into patches."""

from ..checkpoint.config import load_config
from .options import EXIT_OK, UsageError, checkpoint_folder, configure_picture, picture_paths

NAME = "patches"
SUMMARY = "PNG of how an image is resized and cut into patches"
IMAGES = True  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref patches photo.jpg -o photo.patches.png
  siglip2-ref patches photo.jpg --max-num-patches 64   # a smaller NaFlex budget: coarser grid"""


def configure(p):
    configure_picture(p, "patches")


def run(args):
    from ..preprocess.processor import load_processor
    from ..tasks.pictures import patches_figure, patches_lines

    image, output = picture_paths(args, "patches")
    folder = checkpoint_folder(args)
    config = load_config(folder)
    if args.max_num_patches is not None and config.variant != "naflex":
        raise UsageError(f"--max-num-patches applies to NaFlex checkpoints only; {folder} is a FixRes checkpoint")
    processor = load_processor(folder, resize_backend=args.resize_backend)
    figure, facts = patches_figure(processor, image, config.vision.patch_size, args.max_num_patches)
    figure.save(output)
    print(f"{image}:")
    for line in patches_lines(facts):
        print("  " + line)
    print(f"wrote {output} ({figure.width}x{figure.height} px)")
    return EXIT_OK

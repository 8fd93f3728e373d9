"""`siglip2-ref attention`: a PNG of the MAP head's attention over an image's patches."""

from .options import EXIT_OK, configure_picture, load, picture_paths

NAME = "attention"
SUMMARY = "PNG of the MAP head's attention over an image's patches"
IMAGES = True  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref attention photo.jpg -o photo.attention.png"""


def configure(p):
    configure_picture(p, "attention")


def run(args):
    from ..tasks.pictures import attention_figure

    image, output = picture_paths(args, "attention")
    model, processor = load(args)
    figure, facts = attention_figure(model, processor, image, args.max_num_patches)
    figure.save(output)
    gh, gw = facts["spatial_shape"]
    print(f"{image}: MAP head attention over {gh}x{gw} = {facts['real_patches']} patches, {facts['heads']} heads")
    print(f"  (uniform attention would give every patch {1 / facts['real_patches']:.4f})")
    for name, low, high, (row, col) in facts["summary"]:
        print(f"  {name:>8}: weights {low:.4f} to {high:.4f}, peak at patch row {row}, column {col}")
    print(f"wrote {output} ({figure.width}x{figure.height} px)")
    return EXIT_OK

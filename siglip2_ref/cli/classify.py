"""`siglip2-ref classify`: zero-shot classification of images against text labels."""

import json
import os
import sys

from ..errors import InputError
from .options import (EXIT_OK, EXIT_RUNTIME, IMAGE_SUFFIXES, PROG, UsageError, check_files_exist,
                      demo_image, load, positive_int, read_text_file, score_text)

NAME = "classify"
SUMMARY = "zero-shot classification of images against text labels"
IMAGES = True  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref classify                                   # demo model, demo image, demo labels
  siglip2-ref classify cat.jpg dog.png --labels cat dog "a red car"
  siglip2-ref classify photo.jpg --labels-file labels.txt --model google/siglip2-base-patch16-naflex --json"""


def configure(p):
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (default with the demo model: its demo image)")
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--labels", nargs="+", metavar="LABEL", help='candidate labels, e.g. --labels cat dog "a red car"')
    labels.add_argument("--labels-file", metavar="FILE", help="candidate labels, one per line")
    p.add_argument("--template", default=None, metavar="TEXT",
                   help='prompt around each label, with {} for the label (default: "This is a photo of {}.")')  # fmt: skip
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="labels shown per image (default: 5)")
    p.add_argument("--all", action="store_true", help="show every label (overrides --top-k)")
    p.add_argument("--json", action="store_true", help="print JSON: [{image, predictions: [{label, score}]}]")


def read_labels(args):
    """Labels from --labels / --labels-file, the demo labels for the demo model, or a usage error."""
    if args.labels_file is not None:
        lines = read_text_file("--labels-file", args.labels_file)
        labels = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not labels:
            raise UsageError(f"--labels-file {args.labels_file}: no labels in it (one label per line)")
        return labels
    if args.labels is None:
        if args.model is None:
            from ..demo import shapes

            return shapes.labels()
        raise UsageError('--labels is required: the candidate labels, e.g. --labels cat dog "a red car"')
    blank = [i for i, label in enumerate(args.labels) if not label.strip()]
    if blank:
        raise UsageError(f"--labels: label {blank[0] + 1} is empty")
    swallowed = [label for label in args.labels if label.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(label)]
    if swallowed:
        raise UsageError(f"--labels got the image file {swallowed[0]!r}: put IMAGE arguments before --labels "
                         "(it takes every word after it)")  # fmt: skip
    return args.labels


def run(args):
    from ..tasks.pipelines import DEFAULT_TEMPLATE, check_template, classify_embeddings, iter_image_embeddings, label_embeddings

    template = DEFAULT_TEMPLATE if args.template is None else args.template
    try:
        check_template(template)
    except InputError as e:
        raise UsageError(f"--template: {e}") from None
    labels = read_labels(args)
    images = demo_image(args, args.images)
    check_files_exist(images)
    model, processor = load(args)
    label_embeds = label_embeddings(model, processor, labels, template)  # [L, D]
    failed = []
    results = {}
    for indices, embeds in iter_image_embeddings(model, processor, images, max_num_patches=args.max_num_patches,
                                                 on_error=lambda i, path, e: failed.append((path, e))):  # fmt: skip
        top = None if args.all else args.top_k
        results.update(zip(indices, classify_embeddings(model, label_embeds, embeds, labels, top)))
    print_classification([(images[i], results[i]) for i in sorted(results)], args.json)
    for path, error in failed:
        print(f"{PROG}: error: {error}", file=sys.stderr)
    return EXIT_RUNTIME if failed else EXIT_OK


def print_classification(results, as_json):
    if as_json:
        rows = [{"image": str(path), "predictions": [{"label": label, "score": score} for label, score in preds]}
                for path, preds in results]  # fmt: skip
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for path, predictions in results:
        print(path)
        for label, score in predictions:
            print(f"  {score_text(score)}  {label}")
    if results:
        print("(scores are independent sigmoid probabilities: they need not sum to 1)")

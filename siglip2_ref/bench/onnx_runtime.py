"""ONNX Runtime as a peer in the benchmark: transformers' towers exported with torch.onnx, float32 and dynamic int8.

Needs onnxruntime, onnx and the oracle extra (torch, transformers); `available()` says whether they are installed.
The towers are exported from the same random checkpoint the other rows load, with TorchScript's tracer
(`torch.onnx.export(..., dynamo=False)`), once per workload: NaFlex's position-embedding resize reads the values
of `spatial_shapes`, which tracing records as constants, so a graph is only valid for the grid it was traced on.
Dynamic int8 is `onnxruntime.quantization.quantize_dynamic` (int8 weights, activations quantised per call).
"""

import logging
import warnings
from pathlib import Path


def available():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def versions():
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider)"


def tower_module(hf_model, tower):
    """A torch module whose forward is the tower's pooled features, the call the other rows time."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = hf_model

        def forward(self, *args):
            if tower == "text":
                return self.model.get_text_features(input_ids=args[0]).pooler_output
            names = ("pixel_values", "pixel_attention_mask", "spatial_shapes")[: len(args)]
            return self.model.get_image_features(**dict(zip(names, args))).pooler_output

    return Tower().eval()


def export(hf_model, tower, data, path):
    """`data` (the workload's NumPy inputs) traced through the tower into an ONNX file at `path`."""
    import torch

    path = Path(path)
    if path.is_file():
        return path
    args = tuple(torch.from_numpy(v) for v in data.values())
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's warnings about the constant spatial_shapes, see above
        torch.onnx.export(tower_module(hf_model, tower), args, str(path), input_names=list(data), output_names=["features"],
                          opset_version=17, dynamo=False)  # fmt: skip
    return path


def quantize(path):
    """The dynamic int8 version of an exported file (next to it)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(path).with_suffix(".int8.onnx")
    if not out.is_file():
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process first (shape inference) is not taken
        try:
            quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
        finally:
            logging.getLogger().setLevel(quiet)
    return out


def session_call(path, data, threads):
    """A callable running the ONNX file on `data` with `threads` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = dict(data)
    return lambda: session.run(None, feeds)


def onnx_calls(hf_model, tower, data, folder, name, threads):
    """{"ort": float32 call, "ort_int8": dynamic int8 call} for one workload, exporting on first use."""
    stem = Path(folder) / name.replace(" ", "_").replace("=", "")
    exported = export(hf_model, tower, data, stem.with_suffix(".onnx"))
    return {"ort": session_call(exported, data, threads), "ort_int8": session_call(quantize(exported), data, threads)}

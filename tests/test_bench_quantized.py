"""The quantized benchmark (siglip2_ref/bench/quantized.py) runs end to end on a tiny size and prints its tables."""

from siglip2_ref.bench import quantized


def test_quantized_benchmark_tiny(tmp_path, capsys):
    assert quantized.main(["--sizes", "tiny", "--time-size", "tiny", "--rounds", "1", "--repeats", "1", "--batch", "1",
                           "--folder", str(tmp_path)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    rows = {line.split("|")[2].strip(): line for line in out.splitlines() if line.startswith("| tiny |")}
    assert list(rows) == ["float32", "int8", "int4", "int8 at load", "int4 at load"]
    assert rows["float32"].split("|")[5].strip() == "1.00"  # its own ratio
    size = {p.name: (p / "model.safetensors").stat().st_size for p in tmp_path.iterdir()}  # the folders it wrote
    assert size["tiny-int4-g64"] < size["tiny-int8-g64"] < size["tiny-float32"]
    assert "| int4 |" in out.split("paired timing")[1] and "| int4 |" in out.split("six weight products")[1]

"""The chapter machinery: parameters, cache, provenance, plotting, and the runner's checks.

Everything here runs in-process and fast; executing the chapters and building the book is
``test_book.py``.
"""
from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from reprolib import cache  # noqa: E402
from reprolib.device import hardware_summary  # noqa: E402
from reprolib.book import plotting, provenance, runner  # noqa: E402
from reprolib.book.params import PROFILES, Param, ParameterError, Spec, device_param, seed_param  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_spec() -> Spec:
    return Spec(
        Param("n_images", int, smoke=4, cpu=100, paper=1000, lo=1, doc="images"),
        Param("eps_grid", "list[float]", smoke=[0.1], cpu=[0.1, 0.2], paper=[0.1, 0.2, 0.3], lo=0, hi=1),
        Param("norm", str, smoke="l2", cpu="l2", paper="l2", choices=("l2", "linf")),
        Param("restarts", int, smoke=1, cpu=1, paper=10, lo=1),
        seed_param(),
        device_param(),
    )


# ----------------------------------------------------------------------------- params

def test_profiles_give_their_values_and_overrides_win():
    spec = make_spec()
    for profile in PROFILES:
        ns = {"profile": profile, "n_images": None, "eps_grid": None, "norm": None, "restarts": None,
              "seed": None, "device": None}
        params = spec.resolve(ns)
        assert params.profile == profile
        assert params.as_dict() == {"profile": profile, **spec.defaults(profile)}
        assert ns["n_images"] == spec.params["n_images"].default(profile)  # written back
        assert params.overrides == ()
    params = spec.resolve({"profile": "smoke", "n_images": 7, "eps_grid": (0, 1), "seed": None})
    assert params.n_images == 7 and params["restarts"] == 1
    assert params.eps_grid == [0.0, 1.0] and all(isinstance(e, float) for e in params.eps_grid)
    assert set(params.overrides) == {"n_images", "eps_grid"}


def test_unknown_names_are_rejected_with_the_valid_list():
    spec = make_spec()
    ns = {"profile": "cpu", "n_imgs": 3, "In": [], "_": None, "SPEC": spec, "np": np}
    with pytest.raises(ParameterError) as err:
        spec.resolve(ns)
    message = str(err.value)
    assert "Unknown parameter 'n_imgs'" in message
    for name in spec.names:
        assert name in message
    assert "n_imgs" in ns and ns.get("n_images") is None  # nothing written on error


@pytest.mark.parametrize("name, value, fragment", [
    ("n_images", "12", "expected int"),
    ("n_images", 1.5, "expected int"),
    ("n_images", True, "expected int"),
    ("n_images", 0, "outside the valid range"),
    ("eps_grid", 0.1, "list[float]"),
    ("eps_grid", [], "non-empty"),
    ("eps_grid", [0.1, 2.0], "outside the valid range"),
    ("eps_grid", [0.1, "a"], "element"),
    ("norm", "l1", "not one of"),
    ("device", "gpu0", "fails the check"),
    ("seed", -1, "outside the valid range"),
])
def test_wrong_types_and_ranges_are_rejected(name, value, fragment):
    with pytest.raises(ParameterError) as err:
        make_spec().resolve(profile="cpu", **{name: value})
    assert fragment in str(err.value) and f"'{name}'" in str(err.value)
    assert "Valid parameters" in str(err.value)


def test_bad_profile_and_bad_declarations():
    with pytest.raises(ParameterError, match="is not a profile"):
        make_spec().resolve(profile="fast")
    with pytest.raises(ValueError):  # a profile value outside its own range
        Param("n", int, smoke=0, cpu=1, paper=1, lo=1)
    with pytest.raises(ValueError):
        Param("profile", int, smoke=0, cpu=1, paper=1)
    with pytest.raises(ValueError):
        Spec(seed_param(), seed_param())


def test_help_and_markdown_list_every_parameter():
    spec = make_spec()
    for text in (spec.help(), spec.markdown()):
        for name in spec.names:
            assert name in text


# ----------------------------------------------------------------------------- cache

def test_keys_depend_on_inputs_and_code(tmp_path):
    x = torch.arange(6.0)
    k = cache.key("step", {"x": x, "eps": 0.1})
    assert k == cache.key("step", {"eps": 0.1, "x": x.clone()})
    assert k != cache.key("step", {"x": x, "eps": 0.1 + 1e-12})
    assert k != cache.key("step", {"x": x.double(), "eps": 0.1})
    assert k != cache.key("other", {"x": x, "eps": 0.1})
    src = tmp_path / "mod.py"
    src.write_text("A = 1\n")
    k1 = cache.key("step", 1, code=[src])
    src.write_text("A = 2\n")
    assert cache.key("step", 1, code=[src]) != k1
    net = torch.nn.Linear(2, 2)
    k_net = cache.key("step", {"model": net})
    with torch.no_grad():
        net.weight.add_(1)
    assert cache.key("step", {"model": net}) != k_net
    with pytest.raises(TypeError):
        cache.key("step", {"f": object()})


def test_keys_of_models_with_batch_norm():
    # BatchNorm keeps a 0-dim counter (num_batches_tracked); it must hash, and by value
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    k = cache.key("step", {"model": net})
    assert k == cache.key("step", {"model": net})
    net[1].num_batches_tracked += 1
    assert cache.key("step", {"model": net}) != k
    assert cache.key("step", torch.tensor(1.0)) != cache.key("step", torch.tensor(2.0))


def test_cached_hits_misses_and_switch(tmp_path, monkeypatch):
    calls = []

    def compute():
        calls.append(1)
        return {"v": torch.randn(3)}

    a = cache.cached("s", {"i": 1}, compute, seed=5, root=tmp_path)
    b = cache.cached("s", {"i": 1}, compute, seed=5, root=tmp_path)
    assert len(calls) == 1 and torch.equal(a["v"], b["v"])
    assert not list(tmp_path.rglob("*.tmp"))
    monkeypatch.setenv("REPROLIB_NO_CACHE", "1")
    c = cache.cached("s", {"i": 1}, compute, seed=5, root=tmp_path)
    assert len(calls) == 2 and torch.equal(a["v"], c["v"])  # recomputed, same numbers (seeded)
    monkeypatch.delenv("REPROLIB_NO_CACHE")
    with cache.disabled():
        cache.cached("s", {"i": 1}, compute, seed=5, root=tmp_path)
    assert len(calls) == 3
    entry = next(tmp_path.rglob("*.pt"))
    entry.write_bytes(b"truncated")  # a damaged entry is recomputed and replaced
    with pytest.warns(UserWarning, match="recomputing"):
        d = cache.cached("s", {"i": 1}, compute, seed=5, root=tmp_path)
    assert len(calls) == 4 and torch.equal(a["v"], d["v"])


def test_stats_count_computed_and_reused_steps_with_their_cost(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_STATS", {**dict.fromkeys(cache._STATS, 0), "reused_hardware": {}})
    slow = lambda: __import__("time").sleep(0.05) or 1  # noqa: E731
    cache.cached("t", {"i": 1}, slow, root=tmp_path)
    cache.cached("t", {"i": 2}, slow, root=tmp_path)
    first = cache.stats()
    assert (first["computed"], first["reused"]) == (2, 0) and first["computed_seconds"] >= 0.1
    cache.cached("t", {"i": 1}, slow, root=tmp_path)
    old = next(p for p in tmp_path.rglob("*.json") if cache.key("t", {"i": 2}) in p.name)
    old.write_text(json.dumps({"name": "t"}))  # an entry from before times were recorded
    cache.cached("t", {"i": 2}, slow, root=tmp_path)
    s = cache.stats()
    assert (s["computed"], s["reused"], s["reused_untimed"]) == (2, 2, 1)
    assert 0.05 <= s["reused_seconds"] < first["computed_seconds"]  # the timed entry's own cost
    assert s["reused_hardware"] == {hardware_summary(): 1, "unrecorded": 1}  # as each entry records it
    line = provenance.cache_summary({**s, "reused_seconds": 4000.0, "reused_hardware": {"CPU X, 2 cores": 2}})
    assert line == ("2 read from the cache (1 of them took 1 h 06 min 40 s when first computed, "
                    "on CPU X, 2 cores (2 steps)); 2 computed in this run")
    text = provenance.markdown({**provenance.collect({"profile": "cpu"}), "cache": s})
    assert "| cached steps | 2 read from the cache" in text
    assert "cached steps" not in provenance.markdown(provenance.collect({"profile": "cpu"}))


def test_a_killed_run_resumes_with_the_same_numbers(tmp_path):
    """Steps that finished before the kill come from the cache; the rest are recomputed, and
    the numbers equal those of an uninterrupted run without the cache."""
    computed = []

    def step(i):
        computed.append(i)
        return torch.randn(4) * i

    def sweep(kill_at=None):
        out = []
        for i in range(5):
            if i == kill_at:
                raise KeyboardInterrupt
            out.append(cache.cached("sweep", {"i": i}, lambda i=i: step(i), seed=100 + i, root=tmp_path))
        return torch.stack(out)

    with pytest.raises(KeyboardInterrupt):
        sweep(kill_at=3)
    assert computed == [0, 1, 2]
    torch.randn(10)  # whatever ran in between does not matter: each step is seeded
    resumed = sweep()
    assert computed == [0, 1, 2, 3, 4]
    with cache.disabled():
        fresh = sweep()
    assert torch.equal(resumed, fresh)


# ----------------------------------------------------------------------------- provenance

def test_provenance_records_the_run():
    info = provenance.collect({"profile": "smoke", "n_images": 3, "device": "cpu"}, wall_seconds=12.34)
    assert info["profile"] == "smoke" and info["parameters"]["n_images"] == 3
    assert info["torch_version"] == torch.__version__ and info["device"] == "cpu"
    assert info["wall_seconds"] == 12.3 and info["hardware"]
    if (ROOT / ".git").exists():
        assert info["reprolib_commit"][:7].isalnum()
    json.dumps(info)
    text = provenance.markdown({**info, "overrides": ["n_images"]}, rerun="python -m reprolib.book.runner run x")
    assert "`n_images=3` (set)" in text and "smoke" in text and torch.__version__ in text


def test_run_block_gives_the_command_the_expected_time_and_the_downloads():
    info = {"wall_seconds": 13.0, "hardware": "CPU X, 2 cores",
            "cache": {"reused": 3, "reused_untimed": 0, "reused_seconds": 2147.0, "computed": 0}}
    text = provenance.run_block("convex", info, make_command="make chapter NAME=convex PROFILE=cpu",
                                command="python -m reprolib.book.runner run convex --profile cpu")
    assert "`make chapter NAME=convex PROFILE=cpu`" in text
    assert "Expected time on CPU X, 2 cores: 36 min 00 s from an empty cache, 13 s with the 3 cached steps" in text
    assert "{download}`convex.py <../../notebooks/convex.py>`" in text and "{download}`convex.ipynb" in text
    untimed = provenance.run_block("x", {**info, "cache": {**info["cache"], "reused_untimed": 1}},
                                   make_command="m", command="c")
    assert "at least 36 min 00 s" in untimed
    assert "nothing was read from the cache" in provenance.run_block("x", {**info, "cache": {}}, make_command="m",
                                                                     command="c")


# ----------------------------------------------------------------------------- plotting

def test_wilson_interval_matches_known_values():
    lo, hi = plotting.wilson_interval(5, 10)
    assert abs(float(lo) - 0.2366) < 1e-3 and abs(float(hi) - 0.7634) < 1e-3
    lo, hi = plotting.wilson_interval(np.array([0, 10, 0]), np.array([10, 10, 0]))
    assert lo[0] == 0 and hi[1] == 1 and (lo[2], hi[2]) == (0, 1)
    assert 0 < hi[0] < 0.35 and 0.65 < lo[1] < 1


def test_figures():
    x = torch.rand(5, 1, 8, 8)
    fig = plotting.image_grid(x, (x + 0.1).clamp(0, 1), labels=torch.arange(5), adv_labels=torch.tensor([0, 2, 2, 3, 1]),
                              class_names=list("abcde"), n=4, title="t")
    assert len(fig.axes) == 12
    fig = plotting.image_grid(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    assert len(fig.axes) == 6
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plotting.rate_curve(ax, [0, 1, 2], [1, 5, 9], 10, label="r")
    plotting.mean_curve(ax, [0, 1], [np.ones(5), np.arange(5.0)], label="m")
    assert len(ax.lines) == 2 and len(ax.collections) == 2
    assert plotting.bootstrap_interval(np.arange(20.0)) == plotting.bootstrap_interval(np.arange(20.0))
    plt.close("all")


# ----------------------------------------------------------------------------- chapters

def test_parse_value():
    assert runner.parse_value("512") == 512
    assert runner.parse_value("0.5") == 0.5
    assert runner.parse_value("[0.1, 0.3]") == [0.1, 0.3]
    assert runner.parse_value("True") is True
    assert runner.parse_value("cpu") == "cpu"
    assert runner.parse_value("cuda:0") == "cuda:0"


def test_every_chapter_declares_its_parameters():
    names = runner.chapter_names()
    assert names[0] == "intro"
    for name in names:
        nb = runner.load_source(name)
        params = runner.validate(name, "smoke", {}, nb=nb)
        assert params.profile == "smoke"
        assert runner.parameter_names(nb)[0] == "profile"
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "parameters" in first_code.metadata.get("tags", []), f"{name}: first code cell is not `parameters`"
        for stmt in ast.parse(first_code.source).body:  # plain assignments papermill can override
            assert isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant), \
                f"{name}: the parameters cell holds a non-literal statement: {ast.unparse(stmt)}"


def test_chapters_import_reprolib_and_copy_none_of_it():
    import reprolib

    public = set()
    for mod in Path(reprolib.__file__).parent.rglob("*.py"):
        tree = ast.parse(mod.read_text())
        public |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                   and not n.name.startswith("_")}
    for name in runner.chapter_names():
        source = runner.source_path(name).read_text()
        assert "import reprolib" in source or "from reprolib" in source, name
        defined = {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert not defined & public, f"{name} redefines reprolib's {sorted(defined & public)}"


def test_cli_rejects_unknown_and_invalid_parameters_before_writing(tmp_path, capsys):
    out = tmp_path / "out"
    code = runner.main(["run", "intro", "--profile", "smoke", "-p", "n_imgs", "5", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Unknown parameter 'n_imgs'" in err
    for name in runner.spec("intro").names:
        assert name in err
    code = runner.main(["run", "intro", "--profile", "smoke", "-p", "n_images", "-4",
                          "-p", "eps_grid", "0.1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "'n_images'" in err and "'eps_grid'" in err and "Valid parameters" in err
    code = runner.main(["run", "intro", "--profile", "quick", "--out", str(out)])
    assert code == 2 and "is not a profile" in capsys.readouterr().err
    code = runner.main(["run", "no_such_chapter", "--out", str(out)])
    assert code == 1 and "intro" in capsys.readouterr().err
    assert not out.exists()


def test_entry_point_reports_the_same_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "reprolib.book.runner", "run", "intro", "--profile", "smoke",
                           "-p", "bogus", "1", "--out", str(tmp_path / "o")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "Unknown parameter 'bogus'" in proc.stderr
    assert not (tmp_path / "o").exists()


def fake_executed(path: Path, name: str, sha: str, profile: str = "cpu", overrides=None) -> None:
    overrides = overrides or {}
    nb = {"cells": [], "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"reprolib": {"chapter": name, "source_sha256": sha,
                                    "provenance": {"profile": profile, "parameters": {"profile": profile, **overrides},
                                                   "overrides": list(overrides)}}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))


def test_check_names_stale_missing_and_wrong_profile_chapters(tmp_path):
    sha = runner.source_hash("intro")
    assert sha == hashlib.sha256(runner.source_path("intro").read_bytes()).hexdigest()
    assert runner.check(tmp_path, names=["intro"])[0].startswith("intro: no executed copy")
    fake_executed(tmp_path / "intro.ipynb", "intro", sha)
    assert runner.check(tmp_path, names=["intro"]) == []
    fake_executed(tmp_path / "intro.ipynb", "intro", "0" * 64, overrides={"n_images": 64})
    (problem,) = runner.check(tmp_path, names=["intro"])
    assert "changed after" in problem and "stale" in problem
    assert "make chapter NAME=intro PROFILE=cpu ARGS='-p n_images 64'" in problem
    assert "python -m reprolib.book.runner run intro --profile cpu -p n_images 64" in problem
    fake_executed(tmp_path / "intro.ipynb", "intro", sha, profile="smoke")
    (problem,) = runner.check(tmp_path, names=["intro"])
    assert "profile 'smoke'" in problem
    assert runner.check(tmp_path, names=["intro"], expected_profile=None) == []
    with pytest.raises(runner.ChapterError, match="stale"):
        fake_executed(tmp_path / "intro.ipynb", "intro", "1" * 64)
        runner.build(tmp_path, output=tmp_path / "site")


def test_provenance_cell_goes_under_the_title():
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title\ntext"),
                                         nbformat.v4.new_code_cell("x = 1")])
    runner._insert_provenance(nb, "PROV")
    assert nb.cells[1].source == "PROV" and runner.PROVENANCE_TAG in nb.cells[1].metadata.tags
    runner._insert_provenance(nb, "PROV2")  # replaced, not duplicated
    assert [c.source for c in nb.cells].count("PROV2") == 1 and len(nb.cells) == 3


def test_smoke_runs_never_default_to_the_book():
    assert runner.default_out("smoke") != runner.EXECUTED_DIR
    assert runner.default_out("cpu") == runner.EXECUTED_DIR


def test_api_pages_cover_every_module():
    import reprolib

    pkg = Path(reprolib.__file__).parent
    documented = set()
    for page in (ROOT / "book" / "api").glob("*.md"):
        documented |= set(__import__("re").findall(r"automodule:: (\S+)", page.read_text()))
    skip = {"reprolib.models.__main__", "reprolib.models.classifier"}  # Classifier: under reprolib.models
    missing = []
    for mod in pkg.rglob("*.py"):
        parts = mod.relative_to(pkg.parent).with_suffix("").parts
        dotted = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if dotted not in documented and dotted not in skip:
            missing.append(dotted)
    assert not missing, f"add these modules to book/api/*.md: {sorted(missing)}"


def test_a_profile_given_twice_is_refused_before_anything_runs(tmp_path, capsys):
    rc = runner.main(["run", "intro", "--profile", "smoke", "-p", "profile", "'paper'", "--out", str(tmp_path)])
    assert rc == 2 and "profile is given twice" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    assert runner.validate("intro", "smoke", {"profile": "smoke"}).profile == "smoke"  # the same twice is fine


def test_an_unavailable_device_is_refused_up_front(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ParameterError, match="device"):
        runner.validate("intro", "smoke", {"device": "cuda"})


def test_an_output_folder_that_cannot_be_written_is_found_before_the_kernel(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(runner, "_kernel_env", lambda *a: pytest.fail("the kernel was started"))
    with pytest.raises(runner.ChapterError, match="Cannot write the executed notebook to .*nothing was run"):
        runner.run("intro", "smoke", out=blocker / "chapters", progress=False, log=lambda _: None)


def test_an_executed_notebook_is_kept_when_its_final_write_fails(tmp_path, monkeypatch):
    def refuse(nb, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "_write_atomic", refuse)
    with pytest.raises(runner.ChapterError, match="kept at") as err:
        runner.run("intro", "smoke", out=tmp_path, progress=False, log=lambda _: None)
    kept = Path(str(err.value).rsplit("kept at ", 1)[1].rstrip("."))
    assert kept.is_file() and json.loads(kept.read_text())["metadata"]["reprolib"]["chapter"] == "intro"


def test_the_temporary_folder_of_a_dead_run_is_cleaned(tmp_path, monkeypatch):
    monkeypatch.setattr(runner.tempfile, "gettempdir", lambda: str(tmp_path))
    dead = tmp_path / f"{runner._TMP_PREFIX}{2**22 + 12345}-intro-x"
    alive = tmp_path / f"{runner._TMP_PREFIX}{__import__('os').getpid()}-intro-y"
    dead.mkdir(), alive.mkdir()
    runner._clean_dead_runs()
    assert not dead.exists() and alive.exists()


def test_ctrl_c_is_one_line_saying_how_to_resume(monkeypatch, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupted)
    assert runner.main(["run", "intro", "--profile", "smoke"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resume" in err[0]

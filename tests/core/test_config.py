"""Config loading and validation: every bad field is one ConfigError line naming the field."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid

import pytest
import torch

from byzmpi import cli
from byzmpi.aggregators import RULES, Pipeline
from byzmpi.attacks import ATTACKS, Attack
from byzmpi.config import apply_overrides, build_pipeline, load_config, parse_config, parse_override
from byzmpi.errors import ConfigError
from byzmpi.methods import METHODS, MethodSpec
from byzmpi.plan import choose_byzantine

BASE = """
[run]
name = "unit"
seed = 3
rounds = 20
trace = "{trace}"

[clients]
n = 8
byzantine = 2

[task]
name = "synthetic"
features = 5
samples = 200

[method]
name = "sgd"
lr = 0.2

[aggregator]
name = "trimmed_mean"

[attack]
name = "sign_flip"
"""


def write(tmp_path, text: str, name: str = "cfg.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def base(tmp_path):
    return write(tmp_path, BASE.format(trace=tmp_path / "t.h5"))


def error_of(path, overrides=()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value


# ---- each section's bad fields --------------------------------------------------------------
BAD = [
    # (override, field named)
    ("run.colour=1", "run.colour"),  # unknown key
    ("run.seed=abc", "run.seed"),  # wrong type (bare string)
    ("run.seed=1.5", "run.seed"),  # float for int
    ("run.seed=-1", "run.seed"),  # out of range
    ("run.rounds=0", "run.rounds"),
    ("run.progress=fancy", "run.progress"),  # bad choice
    ("run.server_dtype=float16", "run.server_dtype"),
    ("run.trace_messages=1", "run.trace_messages"),  # int for bool
    ("run.log_every=nan", "run.log_every"),  # NaN
    ("run.plugins=plugin.py", "run.plugins"),  # a string, not a list
    ("run.plugins=[1, 2]", "run.plugins"),
    ("clients.n=0", "clients.n"),
    ("clients.byzantine=8", "clients.byzantine"),  # byzantine >= n
    ("clients.byzantine=true", "clients.byzantine"),  # bool for int
    ("clients.per_round=9", "clients.per_round"),  # per_round > n
    ("clients.full_round=9", "clients.full_round"),
    ("clients.per_round=0", "clients.per_round"),
    ("clients.byzantine_ids=[0, 0]", "clients.byzantine_ids"),
    ("clients.byzantine_ids=[8]", "clients.byzantine_ids"),
    ("clients.byzantine_ids=[0, 1, 2, 3, 4, 5, 6, 7]", "clients.byzantine_ids"),
    ("clients.byzantine_ids=[1.0]", "clients.byzantine_ids"),
    ("clients.hosts=2", "clients.hosts"),
    ("task.name=imagenet", "task.name"),
    ("task.name=mnist", "task.path"),  # a file dataset without its path
    ("task.name=libsvm", "task.path"),  # libsvm without path
    ("task.path=data/a9a", "task.path"),  # path without libsvm
    ("task.partition=round_robin", "task.partition"),
    ("task.test_fraction=0.95", "task.test_fraction"),
    ("task.alpha=0", "task.alpha"),
    ("task.samples=0", "task.samples"),
    ("task.batch_size=-1", "task.batch_size"),
    ("method.name=adam", "method.name"),
    ("method.lr=-0.1", "method.lr"),
    ("method.momentum=1.0", "method.momentum"),
    ("method.momentum_form=nesterov", "method.momentum_form"),
    ("method.beta=0.5", "method.beta"),  # unknown parameter of the method
    ("aggregator.name=krun", "aggregator.name"),
    ("aggregator.f=-1", "aggregator.f"),
    ("aggregator.trim=1.5", "aggregator.trim"),
    ("aggregator.k=2", "aggregator.k"),  # multi_krum's parameter, not trimmed_mean's
    ('aggregator.pre=["bucketing_nope"]', "aggregator.pre"),  # unknown pre-aggregator
    ("aggregator.pre=3", "aggregator.pre"),
    ("aggregator.nope.s=2", "aggregator.nope"),  # a pre-aggregator table not listed in pre
    ("attack.name=nope", "attack.name"),
    ("attack.threat_model=remote", "attack.threat_model"),
    ("attack.std=1.0", "attack.std"),  # gaussian's parameter on sign_flip
    ("debug.fail_rank=x", "debug.fail_rank"),
    ("extra.key=1", "extra"),  # unknown section
]


@pytest.mark.parametrize("override, field", BAD, ids=[b[0] for b in BAD])
def test_bad_field_is_one_line_naming_it(base, override, field):
    err = error_of(base, [override])
    assert err.field == field
    line = err.line()
    assert line.startswith(f"byzmpi: config error: {field}: ")
    assert "\n" not in line and "\r" not in line


def test_partition_natural_needs_synthetic(tmp_path):
    data = tmp_path / "d.svm"
    data.write_text("1 1:0.5\n-1 2:1\n")
    cfg = write(tmp_path, BASE.format(trace=tmp_path / "t.h5"))
    err = error_of(cfg, ["task.name=libsvm", f"task.path={data}", "task.partition=natural"])
    assert err.field == "task.partition"
    assert error_of(cfg, ["task.name=digits", "task.partition=natural"]).field == "task.partition"


def test_digits_refuses_logreg(base):
    assert error_of(base, ["task.name=digits", "task.model=logreg"]).field == "task.model"


def test_section_that_is_not_a_table(tmp_path):
    path = write(tmp_path, "run = 3\n")
    assert error_of(path).field == "run"
    path = write(tmp_path, '[run]\nseed = 1\n[method]\nname = "sgd"\nlr = { a = 1 }\n')
    assert error_of(path).field == "method.lr"


def test_unreadable_or_invalid_toml_is_one_line(tmp_path):
    err = error_of(tmp_path / "missing.toml")
    assert "cannot read config file" in err.line() and "\n" not in err.line()
    bad = write(tmp_path, "[run\nseed = 1\n")
    err = error_of(bad)
    assert "not valid TOML" in err.line() and "\n" not in err.line()


def test_key_with_a_newline_still_gives_one_line(tmp_path):
    path = write(tmp_path, '[run]\n"bad\\nkey" = 1\n')
    assert "\n" not in error_of(path).line()


# ---- validity of the rule in the worst sampled round ----------------------------------------
def test_krum_invalid_for_the_sampled_round(base):
    err = error_of(base, ["clients.n=20", "clients.byzantine=3", "clients.per_round=7", "aggregator.name=krum"])
    assert err.field == "aggregator.f"
    assert "krum needs m > 2f + 2" in str(err) and "m = 7" in str(err) and "f = 3" in str(err)
    # 9 > 2*3 + 2: valid
    load_config(base, ["clients.n=20", "clients.byzantine=3", "clients.per_round=9", "aggregator.name=krum"])
    # an explicit, smaller f makes it valid again
    load_config(
        base, ["clients.n=20", "clients.byzantine=3", "clients.per_round=7", "aggregator.name=krum", "aggregator.f=2"]
    )


def test_trimmed_mean_boundary(base):
    load_config(base, ["clients.per_round=5"])  # 5 > 2*2
    assert error_of(base, ["clients.per_round=4"]).field == "aggregator.f"
    load_config(base, ["clients.per_round=4", "aggregator.trim=1"])


@pytest.fixture
def coin_method():
    """A method whose rounds are full (C-hat clients) with probability 0.1."""
    name = f"coin_{uuid.uuid4().hex[:8]}"
    sgd = METHODS["sgd"]
    METHODS.register(
        MethodSpec(name=name, build=sgd.build, doc="test", params=sgd.params, coin=lambda params: (0.1, False))
    )
    yield name
    METHODS.pop(name, None)


def test_validity_checks_full_rounds_only_when_they_can_happen(base, coin_method):
    over = [
        "clients.n=20",
        "clients.byzantine=3",
        "clients.per_round=20",
        "clients.full_round=7",
        "aggregator.name=krum",
    ]
    load_config(base, over)  # sgd never flips the coin: C-hat = 7 cannot happen
    err = error_of(base, over + [f"method.name={coin_method}"])
    assert err.field == "aggregator.f" and "m = 7" in str(err)


@pytest.fixture
def attack_without_local():
    name = f"nolocal_{uuid.uuid4().hex[:8]}"
    ATTACKS.register(Attack(name, lambda ctx: ctx.own.clone(), "test attack with no local form"))
    yield name
    ATTACKS.pop(name, None)


def test_local_threat_model_needs_a_local_implementation(base, attack_without_local):
    load_config(base, [f"attack.name={attack_without_local}"])
    err = error_of(base, [f"attack.name={attack_without_local}", "attack.threat_model=local"])
    assert err.field == "attack.threat_model" and attack_without_local in str(err)
    load_config(base, ["attack.name=alie", "attack.threat_model=local"])


# ---- overrides ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, path, value",
    [
        ("run.seed=5", ["run", "seed"], 5),
        ("method.lr=2.5e-1", ["method", "lr"], 0.25),
        ("run.name=plain", ["run", "name"], "plain"),
        ('run.name="quoted name"', ["run", "name"], "quoted name"),
        ("run.trace=runs/x-{seed}.h5", ["run", "trace"], "runs/x-{seed}.h5"),
        ("clients.byzantine_ids=[1, 4]", ["clients", "byzantine_ids"], [1, 4]),
        ("run.trace_messages=false", ["run", "trace_messages"], False),
        ("a.b.c=x=y", ["a", "b", "c"], "x=y"),
        (" run . seed = 7", ["run", "seed"], 7),
    ],
)
def test_parse_override(text, path, value):
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("text", ["runseed=5", "run.seed", "run.=1", ".seed=1"])
def test_malformed_override(text):
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override(text)


def test_nested_overrides_build_tables():
    raw = apply_overrides({"run": {"seed": 1}}, ["aggregator.bucketing.s=2", "run.seed=4"])
    assert raw == {"run": {"seed": 4}, "aggregator": {"bucketing": {"s": 2}}}
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"run": {"seed": 1}}, ["run.seed.x=2"])


def test_overrides_reach_the_resolved_config(base):
    cfg = load_config(
        base,
        [
            "run.seed=9",
            "method.lr=0.05",
            "run.name=other",
            "aggregator.name=median",
            "clients.byzantine_ids=[3, 1]",
            "attack.name=gaussian",
            "attack.std=3",
        ],
    )
    assert cfg.run.seed == 9 and cfg.method.params.lr == 0.05 and cfg.run.name == "other"
    assert cfg.aggregator.name == "median"
    assert cfg.byzantine_ids == [1, 3] and cfg.clients.byzantine == 2
    assert cfg.attack.name == "gaussian" and cfg.attack.params.std == 3.0
    assert isinstance(cfg.attack.params.std, float)


# ---- resolved defaults ----------------------------------------------------------------------
def test_resolved_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "[run]\nseed = 4\n[clients]\nn = 10\nbyzantine = 3\n"))
    assert cfg.run.rounds == 100 and cfg.run.eval_every == 10 and cfg.run.plugins == []
    assert cfg.clients.per_round == 10 and cfg.clients.full_round == 10
    assert cfg.byzantine_ids == choose_byzantine(4, 10, 3).tolist()
    assert cfg.task.name == "synthetic" and cfg.task.partition == "natural" and cfg.task.model == "logreg"
    assert cfg.task.test_fraction == 0.2 and cfg.task.seed == 4
    assert cfg.method.name == "sgd"
    assert {k: cfg.method.params[k] for k in ("lr", "momentum", "momentum_form")} == {
        "lr": 0.1,
        "momentum": 0.0,
        "momentum_form": "ema",
    }
    assert cfg.aggregator.name == "mean" and cfg.aggregator.f == 3
    assert cfg.attack.name == "none" and cfg.attack.threat_model == "omniscient"
    assert cfg.debug.fail_rank == -1
    assert str(cfg.trace_path) == "runs/run.h5"


def test_resolved_defaults_depend_on_the_dataset(tmp_path):
    data = tmp_path / "d.svm"
    data.write_text("1 1:0.5\n-1 2:1\n")
    cfg = load_config(write(tmp_path, f'[task]\nname = "libsvm"\npath = "{data}"\n'))
    assert cfg.task.partition == "iid" and cfg.task.test_fraction == 0.0
    cfg = load_config(write(tmp_path, '[task]\nname = "digits"\nseed = 12\n'))
    assert cfg.task.model == "softmax" and cfg.task.partition == "iid" and cfg.task.seed == 12


def test_trace_path_substitution(base):
    cfg = load_config(base, ["run.trace=out/{name}-{seed}.h5", "run.name=abc", "run.seed=5"])
    assert str(cfg.trace_path) == "out/abc-5.h5"


def test_to_json_round_trips(base):
    cfg = load_config(base)
    d = json.loads(cfg.to_json())
    assert d["clients"]["byzantine_ids"] == cfg.byzantine_ids
    assert {k: d["aggregator"][k] for k in ("name", "f", "trim")} == {"name": "trimmed_mean", "f": 2, "trim": None}


# ---- fingerprint ----------------------------------------------------------------------------
def test_fingerprint_ignores_key_order_and_logging(tmp_path):
    a = parse_config(
        {"run": {"seed": 1, "rounds": 5}, "clients": {"n": 6, "byzantine": 1}, "aggregator": {"name": "median", "f": 1}}
    )
    b = parse_config(
        {"aggregator": {"f": 1, "name": "median"}, "clients": {"byzantine": 1, "n": 6}, "run": {"rounds": 5, "seed": 1}}
    )
    assert a.fingerprint() == b.fingerprint()
    c = parse_config(
        {
            "run": {
                "seed": 1,
                "rounds": 5,
                "trace": str(tmp_path / "elsewhere.h5"),
                "name": "x",
                "progress": "none",
                "flush_every": 3,
            },
            "clients": {"n": 6, "byzantine": 1},
            "aggregator": {"name": "median", "f": 1},
        }
    )
    assert c.fingerprint() == a.fingerprint()


def test_fingerprint_changes_with_what_shapes_the_trajectory():
    base = {"run": {"seed": 1}, "clients": {"n": 6, "byzantine": 1}}
    fp = parse_config(base).fingerprint()
    assert len(fp) == 32
    for change in (
        {"run": {"seed": 2}},
        {"clients": {"n": 7, "byzantine": 1}},
        {"method": {"lr": 0.3}},
        {"aggregator": {"name": "median"}},
        {"task": {"lam": 0.1}},
    ):
        raw = {**base, **change}
        assert parse_config(raw).fingerprint() != fp, change


def _libsvm_config(folder, lines: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.svm").write_text(lines)
    (folder / "run.toml").write_text(
        'run = { seed = 3 }\nclients = { n = 4, byzantine = 0 }\ntask = { name = "libsvm", path = "tiny.svm" }\n'
    )
    return load_config(folder / "run.toml")


def test_fingerprint_names_data_by_content_not_by_folder(tmp_path):
    """A moved clone (same files, another folder) resumes its checkpoints; edited data does not."""
    data = "1 1:0.5 2:1\n-1 1:1.5\n1 2:2\n-1 1:0.1 2:0.2\n"
    here, moved = _libsvm_config(tmp_path / "here", data), _libsvm_config(tmp_path / "moved" / "deeper", data)
    assert here.task.path != moved.task.path  # the resolved config still records where the file was read
    assert here.fingerprint() == moved.fingerprint()
    edited = _libsvm_config(tmp_path / "edited", data.replace("0.5", "0.6"))
    assert edited.fingerprint() != here.fingerprint()


def _torch_config(folder, net: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.py").write_text(net)
    (folder / "data.py").write_text("def load():\n    raise RuntimeError('not loaded by the config')\n")
    (folder / "run.toml").write_text('task = { name = "torch", model = "net.py:Net", data = "data.py:load" }\n')
    return load_config(folder / "run.toml")


def test_fingerprint_names_model_and_data_factories_by_content(tmp_path):
    net = "import torch\n\ndef Net():\n    return torch.nn.Linear(4, 2)\n"
    a, b = _torch_config(tmp_path / "a", net), _torch_config(tmp_path / "b" / "c", net)
    assert a.task.model != b.task.model and a.task.data != b.task.data
    assert a.fingerprint() == b.fingerprint()
    wider = _torch_config(tmp_path / "wider", net.replace("(4, 2)", "(4, 3)"))
    assert wider.fingerprint() != a.fingerprint()


# ---- the CLI --------------------------------------------------------------------------------
def test_validate_bad_config_prints_one_line_and_returns_2(base, capsys):
    rc = cli.main(["validate", str(base), "--set", "aggregator.name=krun"])
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("byzmpi: config error:")
    assert "aggregator.name" in lines[0] and "Traceback" not in err
    assert out == ""


def test_validate_bad_file_value(tmp_path, capsys):
    path = write(tmp_path, "[clients]\nn = 4\nbyzantine = 9\n")
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("byzmpi: config error: clients.byzantine:")


def test_validate_too_few_ranks_is_one_line(base, capsys):
    assert cli.main(["validate", str(base), "--ranks", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("byzmpi: ") and "2 MPI ranks" in err


def test_validate_good_config(base, capsys):
    assert cli.main(["validate", str(base), "--ranks", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"{base}: ok" and err == ""
    assert cli.main(["validate", str(base), "--print", "--set", "run.seed=8"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["seed"] == 8


# ---- plugins --------------------------------------------------------------------------------
PLUGIN = '''
import torch
from byzmpi.aggregators import Aggregate, rule
from byzmpi.registry import Condition

@rule("{name}", condition=Condition("m > f", lambda m, f, **_: m > f), doc="first row")
def first_row(x, *, f):
    """Return the first input (toy rule for tests)."""
    return Aggregate(x[0].clone())
'''


@pytest.fixture
def toy_rule_name():
    name = f"first_row_{uuid.uuid4().hex[:8]}"
    yield name
    RULES.pop(name, None)


def test_plugin_file_registers_a_usable_rule(tmp_path, toy_rule_name):
    (tmp_path / "plugins").mkdir()
    write(tmp_path / "plugins", PLUGIN.format(name=toy_rule_name), "toy.py")
    path = write(tmp_path, BASE.format(trace=tmp_path / "t.h5"))
    assert toy_rule_name not in RULES
    # the path is relative to the config's folder, not to the working directory
    cfg = load_config(path, ['run.plugins=["plugins/toy.py"]', f"aggregator.name={toy_rule_name}"])
    assert cfg.aggregator.name == toy_rule_name and cfg.run.plugins == ["plugins/toy.py"]
    pipe = build_pipeline(cfg)
    assert isinstance(pipe, Pipeline)
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert torch.equal(pipe(x, f=cfg.aggregator.f, round_=0).value, x[0])
    # loading the same config again does not re-import (no "already registered" error)
    load_config(path, ['run.plugins=["plugins/toy.py"]', f"aggregator.name={toy_rule_name}"])


def test_plugin_by_module_name(tmp_path, monkeypatch, toy_rule_name):
    module = f"byzmpi_test_plugin_{uuid.uuid4().hex[:8]}"
    write(tmp_path, PLUGIN.format(name=toy_rule_name), f"{module}.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        cfg = parse_config({"run": {"plugins": [module]}, "aggregator": {"name": toy_rule_name}})
        assert cfg.aggregator.name == toy_rule_name
    finally:
        sys.modules.pop(module, None)


def test_missing_plugin_is_a_config_error(base):
    err = error_of(base, ['run.plugins=["no_such_plugin.py"]'])
    assert err.field == "run.plugins" and "no_such_plugin.py" in str(err)
    err = error_of(base, ['run.plugins=["no_such_module_xyz"]'])
    assert err.field == "run.plugins"


def test_failed_plugin_is_not_remembered_as_loaded(tmp_path):
    write(tmp_path, "import no_such_dependency_xyz\n", "broken.py")
    path = write(tmp_path, BASE.format(trace=tmp_path / "t.h5"))
    assert error_of(path, ['run.plugins=["broken.py"]']).field == "run.plugins"
    assert error_of(path, ['run.plugins=["broken.py"]']).field == "run.plugins"


def test_plugin_with_syntax_error_is_a_config_error(tmp_path):
    write(tmp_path, "def broken(:\n", "syntax.py")
    path = write(tmp_path, BASE.format(trace=tmp_path / "t.h5"))
    assert error_of(path, ['run.plugins=["syntax.py"]']).field == "run.plugins"


def test_catalogue_attacks_without_local_form_refuse_the_local_threat_model(base):
    omniscient_only = sorted(n for n, a in ATTACKS.items() if a.local is None and not n.startswith("nolocal_"))
    if not omniscient_only:
        pytest.skip("every catalogue attack has a local implementation")
    for name in omniscient_only:
        err = error_of(base, [f"attack.name={name}", "attack.threat_model=local"])
        assert err.field == "attack.threat_model" and repr(name) in str(err), name


@pytest.mark.parametrize("trace", ["runs/{date}.h5", "runs/{name.h5"])
def test_bad_trace_placeholder_is_a_config_error(base, trace):
    err = error_of(base, [f"run.trace={trace}"])
    assert err.field == "run.trace"

"""Tests of the Spec stage: good files parse to the expected values, bad ones fail precisely."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from skyplan.errors import EXIT_BAD_INPUT, SpecError
from skyplan.models import (
    AcceleratorDemand,
    Allowed,
    DataInput,
    Objective,
    Quantity,
    Quota,
    SourcePos,
    SpotPolicy,
)
from skyplan.spec import load_pools, load_quotas, load_spec, parse_duration_hours

FIXTURES = Path(__file__).parent / "fixtures" / "specs"
# A slice of the shipped catalog's names, with its spellings (case, suffixes, TPUs).
KNOWN = ("A100", "A100-80GB", "A10G", "H100", "L4", "T4", "V100", "V100-32GB", "Inferentia",
         "tpu-v5p-8", "tpu-v4-8")


def load(text: str, **kwargs):
    return load_spec("spec.yaml", text=textwrap.dedent(text), known_accelerators=KNOWN, **kwargs)


def one_task(text: str):
    spec = load(text)
    assert len(spec.tasks) == 1
    return spec.tasks[0]


# -- storage -----------------------------------------------------------------------------------------


def test_storage_uri_or_mapping_with_region():
    tasks = "name: s\ntasks:\n  - {name: a, run: echo}\n"
    plain = load("storage: s3://b/p\n" + tasks)
    assert (plain.storage, plain.storage_region) == ("s3://b/p", None)
    mapped = load("storage: {uri: gs://b/p, region: europe-west4}\n" + tasks)
    assert (mapped.storage, mapped.storage_region) == ("gs://b/p", "europe-west4")
    with pytest.raises(SpecError, match="storage needs `uri`"):
        load("storage: {region: us-east-1}\n" + tasks)
    with pytest.raises(SpecError, match="unknown key"):
        load("storage: {uri: s3://b/p, zone: use1-az1}\n" + tasks)


# -- the DESIGN.md example -------------------------------------------------------------------------


def test_design_example_parses_to_expected_values():
    path = FIXTURES / "ml-pipeline.yaml"
    spec = load_spec(path, known_accelerators=KNOWN)

    assert spec.name == "ml-pipeline"
    assert spec.objective is Objective.COST
    assert spec.deadline_hours == 36.0
    assert spec.budget == 800.0
    assert spec.allowed == Allowed(clouds=("aws", "gcp", "azure"), regions=("us-*", "eu-*", "europe-*"))
    assert spec.exclude_zones == ("us-east-1a",)
    assert spec.storage == "s3://my-bucket/skyplan"
    assert spec.source_file == str(path)
    assert spec.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [t.name for t in spec.tasks] == ["preprocess", "train"]
    assert spec.edges == (("preprocess", "train"),)

    pre = spec.task("preprocess")
    (option,) = pre.options
    assert option.cpus == Quantity(16, at_least=True)
    assert option.memory_gib == Quantity(64, at_least=True)
    assert option.disk_gb == 200
    assert option.accelerator is None
    assert option.use_spot is SpotPolicy.ON_DEMAND
    assert pre.setup == "pip install -r requirements.txt"
    assert pre.run == "python preprocess.py"
    assert pre.inputs == (DataInput("s3://public-data/raw", 500.0, "aws", "us-east-1"),)
    assert pre.outputs_gb == 50.0
    assert (pre.hours, pre.hours_given) == (2.0, True)
    assert pre.allowed == spec.allowed
    assert pre.pos == SourcePos(str(path), 11, "tasks[preprocess]")

    train = spec.task("train")
    assert train.depends_on == ("preprocess",)
    assert train.num_nodes == 2
    assert [o.accelerator for o in train.options] == [AcceleratorDemand("A100", 8), AcceleratorDemand("V100", 8)]
    assert {o.use_spot for o in train.options} == {SpotPolicy.AUTO}
    assert {o.preference for o in train.options} == {0}
    assert train.hours_for("A100") == 10.0
    assert train.hours_for("V100") == 28.0
    assert train.outputs_gb == 5.0
    assert train.envs == (("EPOCHS", "10"),)
    # Per-task `allowed` replaces only the keys it gives.
    assert train.allowed == Allowed(clouds=("aws", "gcp", "azure"), regions=("eu-*", "europe-*"))
    assert spec.warnings == ()


# -- SkyPilot files --------------------------------------------------------------------------------


def test_skypilot_task_yaml_is_a_one_task_dag():
    spec = load_spec(FIXTURES / "skypilot-train.yaml", known_accelerators=KNOWN)

    assert spec.name == "llm-finetune"
    (task,) = spec.tasks
    assert task.name == "llm-finetune"
    assert task.num_nodes == 2
    (option,) = task.options
    assert option.accelerator == AcceleratorDemand("A100", 8)
    assert option.use_spot is SpotPolicy.SPOT
    assert option.disk_gb == 512
    assert option.ports == (8888,)
    assert task.workdir == "."
    assert task.file_mounts == (("/data/tokenizer", "s3://my-models/tokenizer"), ("~/.netrc", "~/.netrc"))
    # Numbers keep their spelling: an env var is text, and `2.0e-5` must not become 2e-05.
    assert task.envs == (("EPOCHS", "10"), ("LR", "2.0e-5"), ("MODEL_NAME", "meta-llama/Llama-3.1-8B"),
                         ("WANDB_MODE", "offline"))
    assert task.secrets == ("HF_TOKEN", "WANDB_API_KEY")
    assert task.setup.startswith("set -e\npip install -U \"torch==2.4.*\"")
    assert task.run.endswith('train.py --model "${MODEL_NAME}" --epochs ${EPOCHS}\n')
    assert "torchrun \\\n  --nnodes=$SKYPILOT_NUM_NODES \\\n" in task.run
    assert (task.hours, task.hours_given) == (1.0, False)
    assert task.pos == SourcePos(str(FIXTURES / "skypilot-train.yaml"), 2, "tasks[llm-finetune]")


def test_skypilot_task_without_name_is_named_after_the_file(tmp_path):
    path = tmp_path / "resnet-train.yaml"
    path.write_text("resources:\n  accelerators: V100\nrun: python train.py\n")
    spec = load_spec(path, known_accelerators=KNOWN)
    assert spec.name == "resnet-train"
    assert spec.tasks[0].name == "resnet-train"
    assert spec.tasks[0].options[0].accelerator == AcceleratorDemand("V100", 1)


def test_skypilot_pipeline_yaml_is_a_chain():
    spec = load_spec(FIXTURES / "skypilot-pipeline.yaml", known_accelerators=KNOWN)

    assert spec.name == "pipeline"
    assert [t.name for t in spec.tasks] == ["prep", "train", "task-3"]
    assert spec.edges == (("prep", "train"), ("train", "task-3"))
    prep, train, evaluate = spec.tasks
    assert prep.options[0].cpus == Quantity(8, at_least=True)
    assert prep.run == 'echo "preparing data"\npython prep.py --out /tmp/data\n'
    # A set (flow mapping `{V100:4, A100:4}`) is "any one, equally good".
    assert [(o.accelerator, o.preference) for o in train.options] == [
        (AcceleratorDemand("V100", 4), 0), (AcceleratorDemand("A100", 4), 0)]
    assert {o.use_spot for o in train.options} == {SpotPolicy.ON_DEMAND}
    # A list is SkyPilot's "try in this order".
    assert [(o.accelerator, o.preference) for o in evaluate.options] == [
        (AcceleratorDemand("L4", 1), 0), (AcceleratorDemand("T4", 1), 1)]


def test_pipeline_without_header_takes_the_file_stem(tmp_path):
    path = tmp_path / "two-step.yaml"
    path.write_text("name: a\nrun: echo a\n---\nname: b\nrun: echo b\n")
    spec = load_spec(path)
    assert spec.name == "two-step"
    assert spec.edges == (("a", "b"),)


def test_pipeline_ignores_empty_documents():
    spec = load("name: p\n---\nname: a\n---\nname: b\n---\n")
    assert [t.name for t in spec.tasks] == ["a", "b"]
    assert spec.edges == (("a", "b"),)


def test_pipeline_header_may_carry_spec_settings():
    spec = load("""\
        name: chain
        objective: time
        deadline: 2d
        ---
        name: only
        run: echo hi
        """)
    assert (spec.name, spec.objective, spec.deadline_hours) == ("chain", Objective.TIME, 48.0)


# -- resources -------------------------------------------------------------------------------------


def test_task_without_resources_gets_the_default_shape_and_hour():
    task = one_task("""\
        name: x
        tasks:
          - name: a
            run: echo hi
        """)
    (option,) = task.options
    assert option.cpus == Quantity(2, at_least=True)
    assert option.accelerator is None
    assert (task.hours, task.hours_given) == (1.0, False)
    assert task.num_nodes == 1


@pytest.mark.parametrize(
    ("accelerators", "expected"),
    [
        ("A100:8", [("A100", 8, 0)]),
        ("a100", [("A100", 1, 0)]),
        ("a100-80gb:4", [("A100-80GB", 4, 0)]),
        ("tpu-v5p-8", [("tpu-v5p-8", 1, 0)]),
        ("{A100: 8, V100: 8}", [("A100", 8, 0), ("V100", 8, 0)]),
        ("{A100:8, H100:8}", [("A100", 8, 0), ("H100", 8, 0)]),
        ('"{A100:8, H100:8}"', [("A100", 8, 0), ("H100", 8, 0)]),
        ('["H100:8", "A100:8"]', [("H100", 8, 0), ("A100", 8, 1)]),
        ("{inferentia: 1}", [("Inferentia", 1, 0)]),
    ],
)
def test_accelerator_spellings(accelerators, expected):
    task = one_task(f"name: x\ntasks:\n  - name: a\n    resources:\n      accelerators: {accelerators}\n")
    assert [(o.accelerator.name, o.accelerator.count, o.preference) for o in task.options] == expected


def test_accelerator_names_are_kept_as_written_without_a_catalog():
    spec = load_spec("s.yaml", text="name: x\ntasks: [{name: a, resources: {accelerators: 'Gaudi2:8'}}]\n")
    assert spec.tasks[0].options[0].accelerator == AcceleratorDemand("Gaudi2", 8)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("cpus: 16", {"cpus": Quantity(16, False)}),
        ("cpus: 16+", {"cpus": Quantity(16, True)}),
        ("cpus: '0.5+'", {"cpus": Quantity(0.5, True)}),
        ("memory: 32GB+", {"memory_gib": Quantity(32, True)}),
        ("memory: 1TB", {"memory_gib": Quantity(1024, False)}),
        ("disk_size: 100", {"disk_gb": 100}),
        ("disk: 1TB", {"disk_gb": 1024}),
        ("use_spot: false", {"use_spot": SpotPolicy.ON_DEMAND}),
        ("use_spot: auto", {"use_spot": SpotPolicy.AUTO}),
        ("cloud: AWS", {"cloud": "aws"}),
        ("infra: gcp/us-central1/us-central1-a", {"cloud": "gcp", "region": "us-central1", "zone": "us-central1-a"}),
        ("infra: '*/eu-west-1'", {"cloud": None, "region": "eu-west-1"}),
        ("instance_type: p4d.24xlarge", {"instance_type": "p4d.24xlarge", "cpus": None}),
        ("image_id: ami-0123456789abcdef0", {"image_id": "ami-0123456789abcdef0"}),
        ("ports: 8080", {"ports": (8080,)}),
        ("ports: [8000-8002, '22', 8001]", {"ports": (22, 8000, 8001, 8002)}),
    ],
)
def test_resource_fields(written, expected):
    task = one_task(f"name: x\ntasks:\n  - name: a\n    resources:\n      {written}\n")
    (option,) = task.options
    for field_name, value in expected.items():
        assert getattr(option, field_name) == value, field_name


def test_any_of_alternatives_override_shared_keys_and_are_equally_preferred():
    task = one_task("""\
        name: x
        tasks:
          - name: a
            resources:
              use_spot: true
              accelerators: A100:8
              any_of:
                - {cloud: aws, region: us-east-1}
                - {cloud: gcp, accelerators: {H100: 8, A100: 8}}
        """)
    shapes = [(o.cloud, o.region, o.accelerator.name, o.use_spot, o.preference) for o in task.options]
    assert shapes == [
        ("aws", "us-east-1", "A100", SpotPolicy.SPOT, 0),
        ("gcp", None, "H100", SpotPolicy.SPOT, 0),
        ("gcp", None, "A100", SpotPolicy.SPOT, 0),
    ]


def test_ordered_alternatives_rank_by_position():
    task = one_task("""\
        name: x
        tasks:
          - name: a
            resources:
              ordered:
                - {cloud: gcp, accelerators: "H100:8"}
                - {cloud: aws, accelerators: ["A100:8", "V100:8"]}
        """)
    assert [(o.cloud, o.accelerator.name, o.preference) for o in task.options] == [
        ("gcp", "H100", 0), ("aws", "A100", 1), ("aws", "V100", 2)]


# -- task fields -----------------------------------------------------------------------------------


def test_envs_keep_the_spelling_written_in_yaml():
    task = one_task("""\
        name: x
        tasks:
          - name: a
            envs:
              EPOCHS: 10
              RATIO: 1.50
              FLAG: yes
              MASK: 0x1F
              QUOTED: "007"
              EMPTY: ""
        """)
    assert dict(task.envs) == {"EPOCHS": "10", "RATIO": "1.50", "FLAG": "yes", "MASK": "0x1F",
                               "QUOTED": "007", "EMPTY": ""}
    assert [name for name, _ in task.envs] == sorted(dict(task.envs))


def test_secret_values_are_refused_because_the_spec_is_copied_into_the_plan():
    spec = load("""\
        name: x
        tasks:
          - name: a
            secrets:
              HF_TOKEN: null
        """)
    assert spec.tasks[0].secrets == ("HF_TOKEN",)
    with pytest.raises(SpecError) as err:
        load("""\
            name: x
            tasks:
              - name: a
                secrets:
                  HF_TOKEN: null
                  WANDB_API_KEY: abc123
            """)
    assert "spec.yaml:6" in str(err.value) and "WANDB_API_KEY: null" in str(err.value)
    assert "abc123" not in str(err.value)
    assert err.value.exit_code == 2


def test_secrets_as_a_list_of_names():
    task = one_task("name: x\ntasks:\n  - name: a\n    secrets: [B_KEY, A_KEY]\n")
    assert task.secrets == ("A_KEY", "B_KEY")


@pytest.mark.parametrize(
    ("uri", "cloud"),
    [
        ("s3://bucket/raw", "aws"),
        ("gs://bucket/raw", "gcp"),
        ("https://acct.blob.core.windows.net/container/raw", "azure"),
        ("az://container/raw", "azure"),
        ("file:///data/raw", "local"),
        ("/data/raw", "local"),
        ("./raw", "local"),
        ("r2://bucket/raw", None),
        ("https://example.com/raw.tar", None),
    ],
)
def test_input_cloud_is_inferred_from_the_uri(uri, cloud):
    task = one_task(f"name: x\ntasks:\n  - name: a\n    inputs:\n      - {{uri: '{uri}', size_gb: 1}}\n")
    assert task.inputs == (DataInput(uri, 1.0, cloud, None),)


def test_skypilot_inputs_and_outputs_mappings():
    task = one_task("""\
        name: x
        tasks:
          - name: a
            inputs: {gs://bucket/x: 500}
            outputs: {s3://out/a: 20, s3://out/b: 5.5}
        """)
    assert task.inputs == (DataInput("gs://bucket/x", 500.0, "gcp", None),)
    assert task.outputs_gb == 25.5


def test_hours_mapping_with_default_and_duration_strings():
    task = one_task("""\
        name: x
        tasks:
          - name: a
            resources:
              any_of:
                - {accelerators: "a100:8"}
                - {cpus: 64+}
            hours: {A100: 90m, default: 1d}
        """)
    assert task.hours_for("A100") == 1.5
    assert task.hours_for(None) == 24.0
    assert task.hours_given


def test_unicode_task_names_and_stable_topological_order():
    spec = load("""\
        name: x
        tasks:
          - name: "évaluer 🚀"
            depends_on: données
          - name: données
          - name: other
        """)
    # Ready together: `données` then `other` stay in spec order; the dependent comes once ready.
    assert [t.name for t in spec.tasks] == ["données", "évaluer 🚀", "other"]


def test_yaml_anchors_and_merge_keys():
    spec = load("""\
        name: x
        tasks:
          - name: a
            resources: &gpu {accelerators: "V100:4", use_spot: true}
          - name: b
            resources:
              <<: *gpu
              cpus: 8+
        """)
    b = spec.task("b").options[0]
    assert (b.accelerator, b.use_spot, b.cpus) == (AcceleratorDemand("V100", 4), SpotPolicy.SPOT,
                                                   Quantity(8, True))


# -- scripts survive byte-for-byte -----------------------------------------------------------------

NASTY = (
    'echo "double" \'single\' `backtick` \\backslash \\\\two',
    "echo ${HOME} $${literal} %{not_a_template} ${{jinja}}",
    "cat <<'EOF'\nline with $VAR and \"quotes\"\nEOF\n",
    "cat <<-EOT\n\tindented\n\tEOT",
    "echo 'üñíçødé ✓ 日本語 🚀'\n\n\n",
    "   leading spaces and trailing   \n",
    "# not a comment in YAML\n- not a list\nkey: not a mapping\n",
    "printf '%s\\n' a\tb\r\nc",
)


@pytest.mark.parametrize("script", NASTY)
def test_scripts_survive_byte_for_byte(script):
    text = yaml.safe_dump({"name": "x", "tasks": [{"name": "a", "setup": script, "run": script}]},
                          allow_unicode=True)
    task = load(text).tasks[0]
    assert task.setup == script
    assert task.run == script


def test_block_scalar_keeps_trailing_newlines():
    task = one_task('name: x\ntasks:\n  - name: a\n    run: |+\n      echo "${X}" \\\n        && cat <<EOF\n      EOF\n\n\n')
    assert task.run == 'echo "${X}" \\\n  && cat <<EOF\nEOF\n\n\n'


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_any_script_text_round_trips(script):
    # Escaped output: PyYAML writes U+0085/U+2028 raw with allow_unicode, and YAML reads those as
    # line breaks — a property of the dumper used to build the input, not of skyplan's parser.
    text = yaml.safe_dump({"name": "x", "tasks": [{"name": "a", "run": script}]}, allow_unicode=False)
    assert load(text).tasks[0].run == script


# -- quotas and pools ------------------------------------------------------------------------------


def test_quotas_and_pools_from_files_named_in_the_spec():
    spec = load_spec(FIXTURES / "with-capacity.yaml", known_accelerators=KNOWN)
    assert spec.objective is Objective.TIME
    assert spec.deadline_hours == 1.5
    assert spec.budget == 1000.0
    assert spec.quotas == (
        Quota("aws-g-vcpus", "vcpus", 64.0,
              (("cloud", "aws"), ("family", "g*"), ("region", "us-east-1"), ("spot", "false"))),
        Quota("gcp-a100", "accelerators", 16.0, (("accelerator", "A100"), ("cloud", "gcp")), per_region=True),
        Quota("azure-nodes", "nodes", 10.0, (("cloud", "azure"),)),
    )
    (pool,) = spec.pools
    assert (pool.name, pool.hourly_cost, pool.region) == ("lab", 0.5, "on-prem")
    gpu1, other = pool.hosts
    assert (gpu1.name, gpu1.address, gpu1.user, gpu1.key_path, gpu1.port) == (
        "gpu1", "10.0.0.5", "ubuntu", "~/.ssh/id_ed25519", 22)
    assert (gpu1.cpus, gpu1.memory_gib, gpu1.accelerator, gpu1.accelerator_count) == (32, 128, "A100", 4)
    assert (other.name, other.user, other.accelerator, other.accelerator_count) == ("10.0.0.6", "admin", None, 0)


def test_load_quotas_and_load_pools_read_standalone_files():
    quotas = load_quotas(FIXTURES / "quotas.yaml")
    # Without a catalog, names are kept as written.
    assert quotas[1].match == (("accelerator", "a100"), ("cloud", "gcp"))
    assert load_quotas(FIXTURES / "quotas.yaml", known_accelerators=KNOWN)[1].match[0] == ("accelerator", "A100")
    assert [q.name for q in quotas] == ["aws-g-vcpus", "gcp-a100", "azure-nodes"]
    (pool,) = load_pools(FIXTURES / "pools.yaml")
    assert [h.name for h in pool.hosts] == ["gpu1", "10.0.0.6"]


def test_quota_spot_accepts_quoted_booleans():
    spec = load('name: x\nquotas: [{cloud: aws, spot: "True", vcpus: 8}]\ntasks: [{name: a}]\n')
    assert spec.quotas == (Quota("aws-spot-vcpus", "vcpus", 8.0, (("cloud", "aws"), ("spot", "true"))),)


def test_generated_quota_names_are_readable_and_unique():
    spec = load("""\
        name: x
        quotas:
          - {cloud: aws, region: us-east-1, family: "p*", spot: true, vcpus: 96}
          - {cloud: gcp, nodes: 4}
          - {cloud: gcp, nodes: 8}
          - {accelerators: 32}
        tasks: [{name: a}]
        """)
    assert [q.name for q in spec.quotas] == [
        "aws-us-east-1-p*-spot-vcpus", "gcp-nodes", "gcp-nodes-2", "all-accelerators"]


def test_error_in_an_included_file_names_that_file(tmp_path):
    (tmp_path / "q.yaml").write_text("- {cloud: aws}\n")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text("name: x\nquotas: q.yaml\ntasks: [{name: a}]\n")
    with pytest.raises(SpecError) as caught:
        load_spec(spec_path)
    assert caught.value.pos == SourcePos(str(tmp_path / "q.yaml"), 1, "[0]")
    assert "exactly one of `vcpus`, `accelerators` or `nodes`" in caught.value.detail


# -- durations -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hours"),
    [(12, 12.0), (0.5, 0.5), ("36h", 36.0), ("90m", 1.5), ("2d", 48.0), ("1h30m", 1.5), ("1d 12h", 36.0),
     ("7200s", 2.0), ("2.5", 2.5), ("1.5H", 1.5)],
)
def test_parse_duration_hours(value, hours):
    assert parse_duration_hours(value, SourcePos("f", 1, "k")) == pytest.approx(hours)


@pytest.mark.parametrize("value", ["soon", "", "h", "12x", "-3h", 0, -1, True, None, "1h soon", float("inf")])
def test_parse_duration_hours_refuses(value):
    with pytest.raises(SpecError, match="expected a number of hours like 36h or 12"):
        parse_duration_hours(value, SourcePos("f", 3, "deadline"))


# -- bad input: file, line, key and a specific message ---------------------------------------------

TASK = "name: x\ntasks:\n  - name: a\n"

BAD = [
    # unknown keys, with suggestions
    ("name: x\nobjectve: cost\ntasks: [{name: a}]\n", 2, "objectve", "did you mean `objective`?"),
    (TASK + "    rnu: echo hi\n", 4, "tasks[a].rnu", "did you mean `run`?"),
    (TASK + "    resources:\n      acelerators: A100:8\n", 5, "tasks[a].resources.acelerators",
     "did you mean `accelerators`?"),
    (TASK + "    resources: {any_of: [{cloud: aws, colud: gcp}]}\n", 4, "tasks[a].resources.any_of[0].colud",
     "did you mean `cloud`?"),
    ("name: x\nrun: echo hi\ntasks: [{name: a}]\n", 2, "run", "it is a task key; move it under a task"),
    (TASK + "    accelerators: A100\n", 4, "tasks[a].accelerators", "move it under `resources:`"),
    # keys skyplan cannot honour, refused by name
    ("name: svc\nservice:\n  readiness_probe: /\nrun: serve\n", 2, "service", "cannot honour `service`"),
    (TASK + "    event_callback: echo done\n", 4, "tasks[a].event_callback", "cannot honour `event_callback`"),
    ("name: p\n---\nname: a\nconfig: {jobs: {}}\nrun: x\n", 4, "config.jobs", "config.jobs cannot be honoured"),
    # wrong types
    (TASK + "    num_nodes: two\n", 4, "tasks[a].num_nodes", "expected a number of nodes, got 'two'"),
    (TASK + "    num_nodes: 0\n", 4, "tasks[a].num_nodes", "expected a number of nodes: a whole number 1 to 1,000, got '0'"),
    (TASK + "    depends_on: {b: 1}\n", 4, "tasks[a].depends_on", "expected a task name or a list of task names"),
    ("name: x\ndeadline: soon\ntasks: [{name: a}]\n", 2, "deadline",
     "expected a number of hours like 36h or 12, got 'soon'"),
    (TASK + "    hours: forever\n", 4, "tasks[a].hours", "expected a number of hours like 36h or 12"),
    (TASK + "    inputs:\n      - {uri: s3://b/x, size_gb: lots}\n", 5, "tasks[a].inputs[0].size_gb",
     "expected a size in GB like 500, got 'lots'"),
    (TASK + "    inputs:\n      - {uri: s3://b/x}\n", 5, "tasks[a].inputs[0]", "an input needs `size_gb`"),
    (TASK + "    inputs: s3://b/x\n", 4, "tasks[a].inputs", "expected a list of {uri, size_gb, region}"),
    (TASK + "    resources: {cpus: lots}\n", 4, "tasks[a].resources.cpus",
     "expected a number of vCPUs like 16 (exactly) or 16+ (at least), got 'lots'"),
    (TASK + "    resources: {use_spot: maybe}\n", 4, "tasks[a].resources.use_spot", "expected true, false or auto"),
    (TASK + "    resources: {ports: 80-99999}\n", 4, "tasks[a].resources.ports", "expected a port (1-65535)"),
    (TASK + "    resources: {disk: 0}\n", 4, "tasks[a].resources.disk", "expected a disk size in GB like 256: a whole number 1 to 100,000 GB, got '0'"),
    ("name: x\nbudget: cheap\ntasks: [{name: a}]\n", 2, "budget", "expected an amount of US dollars"),
    ("name: x\nobjective: fast\ntasks: [{name: a}]\n", 2, "objective", "expected cost or time, got 'fast'"),
    ("name: x\ntasks: {a: {}}\n", 2, "tasks", "expected a list of tasks, got a mapping"),
    (TASK + "    envs: {MY-VAR: 1}\n", 4, "tasks[a].envs.MY-VAR", "not a valid environment variable name"),
    (TASK + "    envs: {A: [1, 2]}\n", 4, "tasks[a].envs.A", "expected a string, number or boolean, got a list"),
    (TASK + "    file_mounts: {/data: {mode: COPY}}\n", 4, "tasks[a].file_mounts./data",
     "a storage mount needs `source` or `name`"),
    (TASK + "    file_mounts: {/data: {name: b, mode: SYNC}}\n", 4, "tasks[a].file_mounts./data.mode",
     "expected COPY, MOUNT or MOUNT_CACHED"),
    # accelerators
    (TASK + "    resources:\n      accelerators: A1000:8\n", 5, "tasks[a].resources.accelerators",
     "unknown accelerator `A1000`; did you mean A100"),
    (TASK + "    resources:\n      accelerators: {H10: 8}\n", 5, "tasks[a].resources.accelerators.H10",
     "unknown accelerator `H10`; did you mean"),
    (TASK + "    resources: {accelerators: 'A100:1.5'}\n", 4, "tasks[a].resources.accelerators",
     "expected a whole number of A100 accelerators: 1 to 1,000, got 1.5"),
    (TASK + "    resources: {accelerators: {A100: 8, V100: 8}}\n    hours: {A100: 3, H100: 2}\n", 5,
     "tasks[a].hours.H100", "this task does not accept accelerator H100 (its accelerators: A100, V100)"),
    (TASK + "    resources: {accelerators: {A100: 8, V100: 8}}\n    hours: {A100: 3}\n", 5,
     "tasks[a].hours", "no runtime estimate for V100; add it or a `default: <hours>` entry"),
    # clouds
    (TASK + "    resources: {cloud: lambda}\n", 4, "tasks[a].resources.cloud", "unsupported cloud `lambda`"),
    ("name: x\nallowed: {clouds: [aws, gpc]}\ntasks: [{name: a}]\n", 2, "allowed.clouds[1]",
     "unsupported cloud `gpc`; did you mean `gcp`?"),
    ("name: x\nallowed: {clouds: [aws]}\ntasks:\n  - name: a\n    resources: {cloud: gcp}\n", 5,
     "tasks[a].resources", "resources ask for gcp/*, but allowed.clouds is [aws]"),
    ("name: x\nallowed: {regions: [eu-*]}\ntasks:\n  - name: a\n    resources: {region: us-east-1}\n", 5,
     "tasks[a].resources", "resources ask for */us-east-1, but allowed.regions is [eu-*]"),
    (TASK + "    resources: {any_of: [{region: us-east-1}]}\n    allowed: {regions: [eu-*], clouds: [gcp]}\n", 4,
     "tasks[a].resources", "but allowed.clouds is [gcp] and allowed.regions is [eu-*]"),
    (TASK + "    resources: {any_of: [{cpus: 2}], ordered: [{cpus: 4}]}\n", 4, "tasks[a].resources.ordered",
     "give either `any_of` or `ordered`, not both"),
    # DAG
    ("name: x\ntasks:\n  - name: preprocess\n  - name: train\n    depends_on: [preprocss]\n", 5,
     "tasks[train].depends_on", "depends on `preprocss`, which is not a task; did you mean `preprocess`?"),
    ("name: x\ntasks:\n  - name: a\n    depends_on: zzz\n", 4, "tasks[a].depends_on", "(tasks: a)"),
    ("name: x\ntasks:\n  - {name: a, depends_on: c}\n  - {name: b, depends_on: a}\n  - {name: c, depends_on: b}\n",
     3, "tasks[a].depends_on", "dependency cycle: a → b → c → a"),
    ("name: x\ntasks:\n  - {name: ok}\n  - {name: b, depends_on: [ok, c]}\n  - {name: c, depends_on: b}\n",
     4, "tasks[b].depends_on", "dependency cycle: b → c → b"),
    ("name: x\ntasks:\n  - {name: a, depends_on: a}\n", 3, "tasks[a].depends_on", "dependency cycle: a → a"),
    ("name: x\ntasks:\n  - name: a\n  - name: a\n", 4, "tasks[1].name", "task name `a` is used twice (first at line 3)"),
    ("name: x\ntasks:\n  - name: '  '\n", 3, "tasks[0].name", "expected a non-empty task name"),
    ("name: x\ntasks:\n  - run: echo\n", 3, "tasks[0]", "a task needs a `name`"),
    ("tasks:\n  - name: a\n", 1, "(top level)", "a spec with `tasks:` needs a `name`"),
    ("name:\ntasks: [{name: a}]\n", 1, "name", "expected a name for the spec, got nothing (null)"),
    ("name: x\ntasks: []\n", 2, "tasks", "expected at least one task"),
    ("name: p\n---\nname: a\ndepends_on: b\n", 4, "depends_on", "a pipeline runs its documents in order"),
    # YAML itself
    ("name: x\ntasks:\n  - name: a\n    run: [unclosed\n", 5, "(yaml)", "invalid YAML"),
    ("name: x\nname: y\ntasks: [{name: a}]\n", 2, "name", "`name` is given twice"),
    ("name: x\ntasks:\n  - name: a\n    run: echo \x07\n", 4, "(yaml)", "control character U+0007 is not allowed"),
    ("name: x\ntasks:\n\t- name: a\n", 3, "(yaml)", "invalid YAML"),
    ("", 0, "(top level)", "the spec is empty"),
    # quotas and pools
    ("name: x\nquotas: [{cloud: aws, vcpus: 8, nodes: 2}]\ntasks: [{name: a}]\n", 2, "quotas[0]",
     "exactly one of `vcpus`, `accelerators` or `nodes`"),
    ("name: x\nquotas: [{cloud: aws, per: zone, vcpus: 8}]\ntasks: [{name: a}]\n", 2, "quotas[0].per",
     "expected `region`"),
    ("name: x\npools: [{name: p, hosts: [{address: h1}]}]\ntasks: [{name: a}]\n", 2, "pools[0].hosts[0]",
     "a host needs a `user`"),
    ("name: x\npools:\n  - {name: p, user: u, hosts: [{address: h1}]}\n  - {name: q, user: u, hosts: [{address: h1}]}\n"
     "tasks: [{name: a}]\n", 4, "pools[1].hosts[0].address", "host `h1` appears twice"),
    ("name: x\nquotas: missing-quotas.yaml\ntasks: [{name: a}]\n", 2, "quotas", "cannot read quotas file"),
]


@pytest.mark.parametrize(("text", "line", "key", "message"), BAD, ids=[f"{i}:{case[2]}" for i, case in enumerate(BAD)])
def test_bad_input_names_file_line_and_key(text, line, key, message):
    with pytest.raises(SpecError) as caught:
        load_spec("bad.yaml", text=text, known_accelerators=KNOWN)
    error = caught.value
    assert error.pos == SourcePos("bad.yaml", line, key)
    assert message in error.detail
    assert str(error).startswith(f"bad.yaml:{line}: {key}: " if line else f"bad.yaml: {key}: ")
    assert error.exit_code == EXIT_BAD_INPUT


def test_unknown_accelerator_lists_close_names_and_a_short_catalog():
    with pytest.raises(SpecError) as caught:
        load(TASK + "    resources: {accelerators: 'a100-80g:8'}\n")
    assert "did you mean A100-80GB" in caught.value.detail
    assert "(known: A100, A100-80GB, A10G, H100, Inferentia, L4" in caught.value.detail


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read the file"):
        load_spec(tmp_path / "nope.yaml")


def test_text_is_used_instead_of_reading_and_hashed():
    text = "name: x\ntasks: [{name: a}]\n"
    spec = load_spec("/does/not/exist.yaml", text=text)
    assert spec.source_file == "/does/not/exist.yaml"
    assert spec.source_sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_a_null_env_is_required_at_launch_and_travels_like_a_secret():
    # SkyPilot's `envs: {HF_TOKEN: }`: a value given at launch. Its value is never in the plan
    # (it is often a token), so it is a secret name too.
    spec = load(TASK + "    envs: {HF_TOKEN: null, EPOCHS: 3, LATE: null}\n    secrets: [WANDB]\n")
    task = spec.task("a")
    assert task.envs == (("EPOCHS", "3"),)
    assert task.launch_envs == ("HF_TOKEN", "LATE")
    assert task.secrets == ("HF_TOKEN", "LATE", "WANDB")

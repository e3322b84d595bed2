"""Tests for skyplan.candidates: matching, spot policy, exclusions, quotas, pruning, messages."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyplan.candidates import (
    SPOT_OVERHEAD,
    CandidateSet,
    build_candidates,
    count_before,
    parse_exclusions,
    prune_dominated,
    quota_limits,
)
from skyplan.catalog import load_catalog
from skyplan.errors import CatalogError, InfeasibleError, SpecError
from skyplan.models import (
    AcceleratorDemand,
    Allowed,
    Bandwidth,
    Candidate,
    Catalog,
    CatalogInfo,
    DataInput,
    Location,
    Offering,
    Quantity,
    Quota,
    ResourceOption,
    Spec,
    SpotPolicy,
    Task,
    TierRates,
)

RATES = {
    "aws": TierRates(0.0, 0.01, 0.02, 0.09),
    "gcp": TierRates(0.0, 0.01, 0.02, 0.12),
    "azure": TierRates(0.0, 0.0, 0.02, 0.0875),
    "local": TierRates(0.0, 0.0, 0.0, 0.0),
}
USE1_AZ1 = Location("aws", "us-east-1", "use1-az1")
USE1_AZ2 = Location("aws", "us-east-1", "use1-az2")
EUW1_AZ1 = Location("aws", "eu-west-1", "euw1-az1")
USC1_A = Location("gcp", "us-central1", "us-central1-a")
EUW4_A = Location("gcp", "europe-west4", "europe-west4-a")
EASTUS = Location("azure", "eastus", None)
LOCAL = Location("local", "localhost", "local-1")


def offering(location, instance_type, vcpus, memory, price, spot=None, accelerator=None, count=0):
    return Offering(location, instance_type, accelerator, count, vcpus, memory, price, spot)


OFFERINGS = (
    offering(USE1_AZ1, "m6i.large", 2, 8, 0.096, 0.03),
    offering(USE1_AZ1, "m6i.xlarge", 4, 16, 0.192, 0.05),
    offering(USE1_AZ2, "m6i.xlarge", 4, 16, 0.192, 0.06),
    offering(EUW1_AZ1, "m6i.xlarge", 4, 16, 0.214, 0.07),
    offering(USE1_AZ1, "g5.xlarge", 4, 16, 1.006, 0.4, "A10G", 1),
    offering(USE1_AZ1, "p4d.24xlarge", 96, 1152, 32.77, 12.0, "A100", 8),
    offering(USE1_AZ2, "p5e.48xlarge", 192, 2048, None, 20.0, "H200", 8),
    offering(USC1_A, "n2-standard-4", 4, 16, 0.194, 0.047),
    offering(EUW4_A, "n2-standard-4", 4, 16, 0.213, 0.05),
    offering(EUW4_A, "a2-highgpu-8g", 96, 680, 29.4, 8.8, "A100", 8),
    offering(EASTUS, "Standard_D4s_v5", 4, 16, 0.192, 0.02),
    offering(EASTUS, "Standard_NC8ads_A10_v4", 8, 110, 0.9, 0.2),  # unnamed GPU
)
LOCAL_SLOT = offering(LOCAL, "local", 8, 32, 0.0)


def small_catalog(offerings=OFFERINGS) -> Catalog:
    return Catalog(tuple(offerings), RATES, Bandwidth(), CatalogInfo("2026-11-22", "x" * 64, "test"))


def cpu_task(name="t", cpus=4, hours=2.0, spot=SpotPolicy.ON_DEMAND, **kw) -> Task:
    option = ResourceOption(cpus=Quantity(cpus, True), use_spot=spot)
    return Task(name=name, options=(option,), hours=hours, **kw)


def gpu_task(name="train", accelerator="A100", count=8, spot=SpotPolicy.ON_DEMAND, **kw) -> Task:
    option = ResourceOption(accelerator=AcceleratorDemand(accelerator, count), use_spot=spot)
    return Task(name=name, options=(option,), **kw)


def spec_of(*tasks, **kw) -> Spec:
    return Spec(name="test", tasks=tuple(tasks), **kw)


def shapes(candidates) -> set[tuple[str, str, bool]]:
    return {(c.location.key, c.offering.instance_type, c.spot) for c in candidates}


# ---------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------


def test_cpu_task_never_gets_gpu_machines():
    got = build_candidates(spec_of(cpu_task(cpus=4)), small_catalog())["t"]
    types = {c.offering.instance_type for c in got}
    assert "g5.xlarge" not in types and "Standard_NC8ads_A10_v4" not in types
    assert "m6i.large" not in types  # 2 vCPUs < 4
    assert {"m6i.xlarge", "n2-standard-4", "Standard_D4s_v5"} <= types


def test_exact_quantity_and_instance_type():
    exact = Task(name="t", options=(ResourceOption(cpus=Quantity(2, False)),))
    assert {c.offering.instance_type for c in build_candidates(spec_of(exact), small_catalog())["t"]} == {
        "m6i.large"
    }
    pinned = Task(name="t", options=(ResourceOption(instance_type="n2-standard-4"),))
    got = build_candidates(spec_of(pinned), small_catalog())["t"]
    assert {c.location for c in got} == {USC1_A, EUW4_A}


def test_accelerator_name_and_count_exact():
    got = build_candidates(spec_of(gpu_task(hours_by_accelerator=(("A100", 10.0),))), small_catalog())[
        "train"
    ]
    assert {c.offering.instance_type for c in got} == {"p4d.24xlarge", "a2-highgpu-8g"}
    assert all(c.hours == 10.0 for c in got)


def test_option_location_and_allowed_globs():
    in_region = Task(name="t", options=(ResourceOption(cpus=Quantity(4, True), region="us-east-1"),))
    assert {c.location for c in build_candidates(spec_of(in_region), small_catalog())["t"]} == {
        USE1_AZ1,
        USE1_AZ2,
    }
    spec = spec_of(
        cpu_task(allowed=Allowed(regions=("eu-*", "europe-*"))),
        cpu_task(name="u"),
        allowed=Allowed(clouds=("aws", "gcp"), regions=("us-*",)),
    )
    got = build_candidates(spec, small_catalog())
    # Task-level regions replace the spec's; the spec's clouds still apply.
    assert {c.location for c in got["t"]} == {EUW1_AZ1, EUW4_A}
    assert {c.location for c in got["u"]} == {USE1_AZ1, USE1_AZ2, USC1_A}


def test_gcp_combined_offering_from_builtin_catalog(monkeypatch):
    monkeypatch.setenv("SKYPLAN_NO_CACHE", "1")
    catalog = load_catalog()
    task = Task(
        name="train",
        options=(ResourceOption(accelerator=AcceleratorDemand("A100", 1), zone="us-central1-a"),),
    )
    got = build_candidates(spec_of(task), catalog)["train"]
    assert [(c.offering.instance_type, c.hourly_price) for c in got] == [("a2-highgpu-1g", 3.67339)]


def test_options_reaching_one_machine_keep_the_preferred():
    task = Task(
        name="t",
        options=(
            ResourceOption(cpus=Quantity(4, True), preference=0),
            ResourceOption(memory_gib=Quantity(16, True), preference=1),
        ),
    )
    got = build_candidates(spec_of(task), small_catalog())["t"]
    assert len(shapes(got)) == len(got)
    assert {c.preference for c in got if c.offering.instance_type == "m6i.xlarge"} == {0}


# ---------------------------------------------------------------------------------------------
# Spot policy
# ---------------------------------------------------------------------------------------------


def test_spot_false_true_auto():
    catalog = small_catalog()
    on_demand = build_candidates(spec_of(cpu_task(hours=2.0)), catalog)["t"]
    assert on_demand and not any(c.spot for c in on_demand)
    spot = build_candidates(spec_of(cpu_task(hours=2.0, spot=SpotPolicy.SPOT)), catalog)["t"]
    assert spot and all(c.spot and c.hours == pytest.approx(2.0 * (1 + SPOT_OVERHEAD)) for c in spot)
    auto = build_candidates(spec_of(cpu_task(hours=2.0, spot=SpotPolicy.AUTO)), catalog)["t"]
    assert {c.spot for c in auto} == {True, False}
    for c in auto:
        assert c.hours == pytest.approx(2.0 * (1 + SPOT_OVERHEAD) if c.spot else 2.0)
        assert c.hourly_price == (c.offering.spot_price if c.spot else c.offering.price)


def test_auto_keeps_spot_only_where_it_wins_after_overhead():
    loc = USE1_AZ1
    catalog = small_catalog(
        (
            offering(loc, "cheap-spot", 4, 16, 1.0, 0.5),
            offering(loc, "dear-spot", 4, 16, 1.0, 0.99),  # 0.99 × 1.15 > 1.0: never worth it
        )
    )
    got = build_candidates(spec_of(cpu_task(spot=SpotPolicy.AUTO)), catalog)["t"]
    assert shapes(got) == {(loc.key, "cheap-spot", True), (loc.key, "cheap-spot", False)}


def test_spot_only_offering_needs_spot():
    with pytest.raises(InfeasibleError, match="H200:8.*only spot is sold"):
        build_candidates(spec_of(gpu_task(accelerator="H200")), small_catalog())
    got = build_candidates(spec_of(gpu_task(accelerator="H200", spot=SpotPolicy.AUTO)), small_catalog())
    assert [c.spot for c in got["train"]] == [True]


# ---------------------------------------------------------------------------------------------
# Exclusions
# ---------------------------------------------------------------------------------------------


def test_exclusion_tokens_zone_region_cloud():
    catalog = small_catalog()
    by_zone = build_candidates(
        spec_of(cpu_task()), catalog, exclusions=parse_exclusions(["use1-az1"], catalog)
    )
    assert USE1_AZ1 not in {c.location for c in by_zone["t"]} and USE1_AZ2 in {
        c.location for c in by_zone["t"]
    }
    by_region = build_candidates(
        spec_of(cpu_task()), catalog, exclusions=parse_exclusions(["us-east-1", "eastus"], catalog)
    )
    assert {c.location for c in by_region["t"]} == {EUW1_AZ1, USC1_A, EUW4_A}
    by_cloud = build_candidates(
        spec_of(cpu_task()), catalog, exclusions=parse_exclusions(["aws", "azure"], catalog)
    )
    assert {c.cloud for c in (c.offering for c in by_cloud["t"])} == {"gcp"}
    prefixed = parse_exclusions(["gcp:us-central1-a"], catalog)
    assert prefixed.zones == frozenset({USC1_A}) and prefixed.tokens == ("gcp:us-central1-a",)


def test_spec_exclude_zones_always_apply():
    catalog = small_catalog()
    spec = spec_of(cpu_task(), exclude_zones=("use1-az2",))
    got = build_candidates(spec, catalog, exclusions=parse_exclusions(["eastus"], catalog))["t"]
    assert not {USE1_AZ2, EASTUS} & {c.location for c in got}


def test_aws_zone_name_gets_az_id_advice():
    with pytest.raises(CatalogError, match=r"AWS zone name.*AZ ids of us-east-1 are use1-az1, use1-az2"):
        parse_exclusions(["us-east-1a"], small_catalog())


def test_unknown_exclusion_suggests_close_names():
    with pytest.raises(CatalogError, match=r"^--exclude-zone us-centrl1-a: no such zone, region or cloud in the "
                                           r"catalog; did you mean us-central1-a, us-central1, "):
        parse_exclusions(["us-centrl1-a"], small_catalog())
    with pytest.raises(CatalogError, match="unknown cloud 'aw'"):
        parse_exclusions(["aw:use1-az1"], small_catalog())


def test_extra_offerings_zones_are_excludable():
    excluded = parse_exclusions(["local-1"], small_catalog(), extra=(LOCAL_SLOT,))
    assert excluded.excludes(LOCAL) and not excluded.excludes(USE1_AZ1)


# ---------------------------------------------------------------------------------------------
# local only when named
# ---------------------------------------------------------------------------------------------


def test_local_only_when_named():
    catalog = small_catalog()
    anywhere = build_candidates(spec_of(cpu_task()), catalog, extra_offerings=(LOCAL_SLOT,))["t"]
    assert "local" not in {c.offering.cloud for c in anywhere}
    named = build_candidates(
        spec_of(cpu_task(), allowed=Allowed(clouds=("local",))), catalog, extra_offerings=(LOCAL_SLOT,)
    )["t"]
    assert [c.offering.cloud for c in named] == ["local"] and named[0].cost == 0.0
    per_task = build_candidates(
        spec_of(cpu_task(allowed=Allowed(clouds=("local", "aws")))), catalog, extra_offerings=(LOCAL_SLOT,)
    )["t"]
    assert {c.offering.cloud for c in per_task} == {"local", "aws"}
    enabled = build_candidates(
        spec_of(cpu_task()), catalog, extra_offerings=(LOCAL_SLOT,), enabled_by_default={"local": True}
    )["t"]
    assert "local" in {c.offering.cloud for c in enabled}


def test_disabled_target_named_in_message():
    with pytest.raises(InfeasibleError, match="local is only used when named in allowed.clouds"):
        build_candidates(
            spec_of(cpu_task(cpus=8)),
            small_catalog(),
            extra_offerings=(LOCAL_SLOT,),
            enabled_by_default={"local": False},
        )
    # Named in allowed.clouds: the slot (8 vCPUs) is used.
    named = build_candidates(
        spec_of(cpu_task(cpus=8), allowed=Allowed(clouds=("local",))),
        small_catalog(),
        extra_offerings=(LOCAL_SLOT,),
    )
    assert named["t"][0].offering is LOCAL_SLOT


# ---------------------------------------------------------------------------------------------
# Input egress
# ---------------------------------------------------------------------------------------------


def test_input_egress_cost_by_tier():
    inputs = (DataInput("s3://b/raw", 500, "aws", "us-east-1"),)
    got = {
        c.location: c.input_egress_cost
        for c in build_candidates(spec_of(cpu_task(inputs=inputs)), small_catalog())["t"]
    }
    assert got[USE1_AZ1] == 0.0  # a bucket serves every zone of its region at the same-zone rate
    assert got[EUW1_AZ1] == pytest.approx(500 * 0.02)
    assert got[USC1_A] == pytest.approx(500 * 0.09)  # the source cloud's internet rate
    assert got[EASTUS] == pytest.approx(500 * 0.09)


def test_input_egress_unknown_region_or_cloud():
    inputs = (DataInput("s3://b/raw", 100, "aws", None), DataInput("https://x/y", 100, None, None))
    got = {
        c.location: c.input_egress_cost
        for c in build_candidates(spec_of(cpu_task(inputs=inputs)), small_catalog())["t"]
    }
    assert got[USE1_AZ1] == 0.0 and got[EUW1_AZ1] == 0.0
    assert got[USC1_A] == pytest.approx(100 * 0.09)


def test_cost_includes_nodes_and_egress():
    task = cpu_task(hours=3.0, num_nodes=2, inputs=(DataInput("gs://b", 10, "gcp", "us-central1"),))
    got = build_candidates(spec_of(task), small_catalog())["t"]
    c = next(c for c in got if c.location == USE1_AZ1)
    # Each of the two nodes reads the input (the real path): 2 × 10 GB at GCP's internet rate.
    assert c.num_nodes == 2 and c.cost == pytest.approx(3.0 * 0.192 * 2 + 2 * 10 * 0.12)


# ---------------------------------------------------------------------------------------------
# Quotas
# ---------------------------------------------------------------------------------------------


def test_quota_usage_and_limits():
    quotas = (
        Quota("aws-standard-od", "vcpus", 64, (("cloud", "aws"), ("family", "m*"), ("spot", "false"))),
        Quota("gpu-per-region", "accelerators", 8, (("accelerator", "A100"),), per_region=True),
        Quota("nodes", "nodes", 3),
    )
    spec = spec_of(cpu_task(num_nodes=2, spot=SpotPolicy.AUTO), gpu_task(), quotas=quotas)
    got = build_candidates(spec, small_catalog())
    m6i = {
        (c.location, c.spot): dict(c.quota_usage)
        for c in got["t"]
        if c.offering.instance_type == "m6i.xlarge"
    }
    assert m6i[(USE1_AZ1, False)] == {"aws-standard-od": 8.0, "nodes": 2.0}
    assert m6i[(USE1_AZ1, True)] == {"nodes": 2.0}
    usage = {c.location: dict(c.quota_usage) for c in got["train"]}
    assert usage[EUW4_A] == {"gpu-per-region@europe-west4": 8.0, "nodes": 1.0}
    limits = quota_limits(spec, small_catalog())
    assert limits["aws-standard-od"] == 64 and limits["nodes"] == 3
    assert limits["gpu-per-region@europe-west4"] == 8 and limits["gpu-per-region@us-east-1"] == 8
    every_key = {k for cands in got.values() for c in cands for k, _ in c.quota_usage}
    assert every_key <= set(limits)


def test_bad_quota_is_a_spec_error():
    spec = spec_of(cpu_task(), quotas=(Quota("q", "gpus", 1),))
    with pytest.raises(SpecError, match="quotas.q.*resource must be one of"):
        build_candidates(spec, small_catalog())


def test_quota_limits_needs_catalog_for_per_region():
    spec = spec_of(cpu_task(), quotas=(Quota("q", "nodes", 1, per_region=True),))
    with pytest.raises(TypeError, match="per region"):
        quota_limits(spec)


# ---------------------------------------------------------------------------------------------
# Infeasible messages
# ---------------------------------------------------------------------------------------------


def test_infeasible_region_message_lists_where_it_exists():
    spec = spec_of(gpu_task(allowed=Allowed(regions=("eu-north-*",))))
    with pytest.raises(InfeasibleError) as err:
        build_candidates(spec, small_catalog())
    assert err.value.message == (
        "task 'train': no offering of A100:8 in regions eu-north-* "
        "(A100:8 exists in: europe-west4, us-east-1; clouds: aws, gcp)"
    )


def test_infeasible_exclusions_and_several_tasks():
    catalog = small_catalog()
    spec = spec_of(
        gpu_task(allowed=Allowed(regions=("europe-*",))),
        gpu_task(name="other", accelerator="a100"),
        gpu_task(name="odd", count=3),
        cpu_task(name="fine"),
        exclude_zones=("europe-west4-a",),
    )
    with pytest.raises(InfeasibleError) as err:
        build_candidates(spec, catalog)
    assert err.value.message.startswith("3 tasks have no candidate:")
    reasons = err.value.reasons
    assert reasons[0] == (
        "task 'train': no offering of A100:8 in regions europe-* outside excluded "
        "europe-west4-a (it exists only in: gcp:europe-west4-a)"
    )
    assert reasons[1] == "task 'other': no accelerator named 'a100' in the catalog (did you mean A100?)"
    assert reasons[2] == "task 'odd': A100 comes in counts 8, not 3"


def test_infeasible_shape_missing():
    with pytest.raises(InfeasibleError, match="no machine in the catalog has cpus 512\\+"):
        build_candidates(spec_of(cpu_task(cpus=512)), small_catalog())


# ---------------------------------------------------------------------------------------------
# Pruning
# ---------------------------------------------------------------------------------------------


def test_pruning_counts_and_order():
    got = build_candidates(spec_of(cpu_task(cpus=1, spot=SpotPolicy.AUTO)), small_catalog())
    assert isinstance(got, CandidateSet)
    # m6i.large is cheaper than m6i.xlarge at use1-az1 for the same hours: xlarge goes.
    assert ("aws/us-east-1/use1-az1", "m6i.xlarge", False) not in shapes(got["t"])
    assert got.total_before > got.total_after == len(got["t"]) == count_before({"t": got["t"]})
    assert count_before(got) == got.total_before == got.before["t"]
    costs = [c.cost for c in got["t"]]
    assert costs == sorted(costs)
    again = build_candidates(spec_of(cpu_task(cpus=1, spot=SpotPolicy.AUTO)), small_catalog())
    assert again["t"] == got["t"]


def make_candidate(location, name, cost, hours, quota=(), preference=0, spot=False):
    off = offering(location, name, 4, 16, cost / hours)
    return Candidate("t", off, spot, hours, cost / hours, 1, 0.0, preference, quota)


LOCATIONS = (USE1_AZ1, USE1_AZ2, EASTUS)
candidate_specs = st.lists(
    st.tuples(
        st.sampled_from(LOCATIONS),
        st.integers(1, 6),  # cost
        st.integers(1, 6),  # hours
        st.sampled_from(((), (("q", 4.0),), (("q", 8.0),))),
        st.integers(0, 1),  # preference
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(candidate_specs)
def test_pruning_keeps_every_possible_optimum(specs):
    candidates = [
        make_candidate(loc, f"m{i}", cost, hours, quota, pref)
        for i, (loc, cost, hours, quota, pref) in enumerate(specs)
    ]
    kept = prune_dominated(candidates)
    assert set(kept) <= set(candidates) and len(set(kept)) == len(kept)
    weights = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    objectives = [lambda c, w=w: w * c.cost + (1 - w) * c.hours for w in weights]
    objectives += [lambda c: max(c.cost, c.hours), lambda c: (c.cost, c.hours), lambda c: (c.hours, c.cost)]
    # Within each location and quota footprint (what pruning compares), the best value of any
    # monotone objective, under any quota cap and preference cap, survives pruning.
    caps = [None, 4.0, 8.0]
    for location, quota_keys in {(c.location, tuple(k for k, _ in c.quota_usage)) for c in candidates}:
        group = [
            c
            for c in candidates
            if c.location == location and tuple(k for k, _ in c.quota_usage) == quota_keys
        ]
        survivors = [c for c in kept if c in group]
        assert survivors
        for objective, cap, max_pref in itertools.product(objectives, caps, (0, 1)):

            def feasible(c, cap=cap, max_pref=max_pref):
                return c.preference <= max_pref and all(cap is None or a <= cap for _, a in c.quota_usage)

            full = [objective(c) for c in group if feasible(c)]
            pruned = [objective(c) for c in survivors if feasible(c)]
            assert (min(full) if full else None) == (min(pruned) if pruned else None)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(candidate_specs)
def test_pruned_candidates_are_dominated_by_a_survivor(specs):
    candidates = [
        make_candidate(loc, f"m{i}", cost, hours, quota, pref)
        for i, (loc, cost, hours, quota, pref) in enumerate(specs)
    ]
    kept = prune_dominated(candidates)
    for removed in set(candidates) - set(kept):
        assert any(
            k.location == removed.location
            and [q for q, _ in k.quota_usage] == [q for q, _ in removed.quota_usage]
            and k.cost <= removed.cost
            and k.hours <= removed.hours
            and k.preference <= removed.preference
            and all(a <= b for (_, a), (_, b) in zip(k.quota_usage, removed.quota_usage, strict=True))
            for k in kept
        )
    # No survivor dominates another strictly.
    for a, b in itertools.permutations(kept, 2):
        if a.location == b.location and a.quota_usage == b.quota_usage and a.preference == b.preference:
            assert not (a.cost <= b.cost and a.hours <= b.hours)
    assert prune_dominated(reversed(candidates)) == kept


def test_builtin_pruning_reduces_and_is_fast_enough_to_matter(monkeypatch):
    monkeypatch.setenv("SKYPLAN_NO_CACHE", "1")
    catalog = load_catalog()
    spec = spec_of(
        Task(
            name="pre",
            options=(ResourceOption(cpus=Quantity(16, True), memory_gib=Quantity(64, True)),),
            hours=2,
        ),
        Task(
            name="train",
            options=(
                ResourceOption(accelerator=AcceleratorDemand("A100", 8), use_spot=SpotPolicy.AUTO),
                ResourceOption(accelerator=AcceleratorDemand("V100", 8), use_spot=SpotPolicy.AUTO),
            ),
            hours_by_accelerator=(("A100", 10.0), ("V100", 28.0)),
            num_nodes=2,
        ),
    )
    got = build_candidates(spec, catalog)
    assert got.total_after < got.total_before
    # At most one on-demand and one spot candidate per CPU location survive (same hours).
    per_location = {}
    for c in got["pre"]:
        per_location.setdefault((c.location, c.spot), []).append(c)
    assert all(len(v) == 1 for v in per_location.values())


def reference_candidates(spec: Spec, catalog: Catalog) -> dict[str, tuple[tuple[Candidate, ...], int]]:
    """Every (offering, spot) pair priced naively, then pruned: what build_candidates must equal."""
    from skyplan.candidates import _quota_usage
    from skyplan.transfers import input_egress

    result = {}
    for task in spec.tasks:
        best: dict[tuple, Candidate] = {}
        for option in task.options:
            for o in catalog.offerings:
                if o.accelerator or not option.cpus.admits(o.vcpus):
                    continue
                hours = task.hours_for(None)
                choices = []
                if option.use_spot in (SpotPolicy.ON_DEMAND, SpotPolicy.AUTO) and o.price is not None:
                    choices.append((False, o.price, hours))
                if option.use_spot in (SpotPolicy.SPOT, SpotPolicy.AUTO) and o.spot_price is not None:
                    choices.append((True, o.spot_price, hours * (1 + SPOT_OVERHEAD)))
                for spot, price, h in choices:
                    c = Candidate(
                        task.name,
                        o,
                        spot,
                        h,
                        price,
                        task.num_nodes,
                        input_egress(task, o.location, catalog),
                        option.preference,
                        _quota_usage(spec, o, spot, task.num_nodes),
                    )
                    held = best.get((id(o), spot))
                    if held is None or (c.preference, c.hours) < (held.preference, held.hours):
                        best[(id(o), spot)] = c
        # `ordered`: only the most preferred rank that has any machine is offered.
        first = min((c.preference for c in best.values()), default=0)
        result[task.name] = (prune_dominated(c for c in best.values() if c.preference == first), len(best))
    return result


random_offerings = st.lists(
    st.tuples(
        st.sampled_from(LOCATIONS),
        st.sampled_from((2, 4, 8, 16)),
        st.integers(1, 40),
        st.one_of(st.none(), st.integers(1, 40)),
    ),
    min_size=1,
    max_size=25,
)
policies = st.sampled_from(tuple(SpotPolicy))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    random_offerings,
    st.lists(st.tuples(st.sampled_from((2, 4, 8)), policies), min_size=1, max_size=3),
    st.integers(1, 3),
    st.booleans(),
)
def test_build_candidates_equals_naive_enumeration_then_pruning(rows, options, nodes, with_quotas):
    offerings = [
        offering(loc, f"m{i}.x", vcpus, vcpus * 4, price / 100, None if spot is None else spot / 100)
        for i, (loc, vcpus, price, spot) in enumerate(rows)
    ]
    catalog = small_catalog(offerings)
    task = Task(
        name="t",
        num_nodes=nodes,
        hours=3.0,
        options=tuple(
            ResourceOption(cpus=Quantity(cpus, True), use_spot=policy, preference=rank)
            for rank, (cpus, policy) in enumerate(options)
        ),
        inputs=(DataInput("s3://b", 10, "aws", "us-east-1"),),
    )
    quotas = (Quota("big", "vcpus", 32, (("cloud", "aws"),)),) if with_quotas else ()
    spec = spec_of(task, quotas=quotas)
    expected = reference_candidates(spec, catalog)
    try:
        got = build_candidates(spec, catalog)
    except InfeasibleError:
        assert expected["t"] == ((), 0)
        return
    assert (got["t"], got.before["t"]) == expected["t"]

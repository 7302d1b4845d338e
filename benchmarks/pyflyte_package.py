"""``pyflyte package`` of 20 tasks over N existing private images: each way to attach pull secrets, and flytekit alone.

Why: issue 10 asks that registration through the library cost <= 1.05x what flytekit alone
costs, and that the docs say which ways of getting the pull secret onto pods cost nothing at
registration. The only honest way to answer is the real ``pyflyte package`` on the same 20 tasks
(spread over N = 1, 3, 10 ImageSpecs), against a real TLS + Bearer-token registry (tests/rig)
where every image already exists (pushed with the docker CLI), so no variant builds anything.

Variants (one workflow module each; ``FLYTE_PRIVATE_REGISTRIES`` declares the registry for all):

- ``flytekit alone``: plain ``@task``, the specs say ``builder="noop"``: flytekit's NoOpBuilder
  answers and no registry is asked (the cheapest flytekit run there is);
- a. ``declared, cold`` / ``declared, warm``: plain ``@task``, no builder named, so ours
  (priority 100) checks each image, with a new ``$XDG_CACHE_HOME`` (a first run: ping, one token
  request, each image's existence check and platform check: its manifest and config blob) and
  then the same cache (the next run: one HEAD per image). ``declared, token expired`` is the
  run users make most: the cache of an earlier run (endpoint and platforms) whose token has
  expired, as registry tokens do after 5 minutes (here: a copy of the warm cache without its
  token file): one token request, no ping, one HEAD per image. Each image is its own (a label makes
  its digest unique), as different ImageSpecs build different images: a shared digest would let
  the platform check run once for all;
- b. ``hand-written``: flytekit's ``@task(pod_template=PodTemplate(pod_spec=V1PodSpec(containers=[],
  image_pull_secrets=[V1LocalObjectReference(...)])))``, one template shared by the tasks, as
  someone would write it by hand; ``@reg.task``: the library's decorator (registry declared in the
  module), which gives each task a pod template carrying the same secret. flytekit's serializer
  imports ``kubernetes`` for any pod template, so both pay for it: hand-written is the cost of the
  feature itself, and ``@reg.task`` is judged against it;
- c. ``via_pod_template_name``: ``@reg.task(via_pod_template_name=...)`` (the task only names a
  cluster PodTemplate); ``service account``: plain ``@task`` with the registry declared in the
  module, the secret living on the namespace's service account
  (``reg.cluster_objects(service_account=...)``, applied once, never at registration). Neither
  puts a pod template in the task, so neither should cost more than a.

After each variant's first run for each N (outside the timing) its package is decoded (the
``TaskSpec`` of every task) and must carry the secret the way the variant claims (a benchmark of
a variant that silently lost its secret is worthless); the library's variants must also pin the
checked digest and build nothing.

Specs use ``source_copy_mode=NO_COPY`` so their tags can be computed here to seed the registry.
Bytecode is cached for every variant as an installed package has it (``pip install`` compiles
it): the children get a private ``PYTHONPYCACHEPREFIX``, filled by one warm-up round before the
first N, even where the shell sets ``PYTHONDONTWRITEBYTECODE``. ``declared, cold`` gets a new,
empty token cache on every run and ``declared, token expired`` a new copy without tokens; the
others share one cache filled before the rounds and must make no token request. So all eight
variants rotate and none always runs first in its round (the cold
one used to, a position bias on one side of its pairs). Wall time and the children's CPU time,
min/median/max; ratios are medians of per-round ratios with their quartiles, plus best wall over
best wall (on a busy machine those two and the CPU ratio are the steadier ones). Each run goes
through ``_in_builders.py``, which also times the ImageSpec builders inside the run ("builders
ms") and ``pyflyte package``'s own work: loading the module, serializing (builders included) and
packaging ("window ms"). "in run" is 1 + the paired difference of the first (section a, where
two variants differ only in the builder) or of the second (b and c, where the module differs
too) over the bottom run's wall: the ratio were everything else equal, a figure the machine's
run-to-run noise (quartiles of about ±10 %) does not reach. It is recorded beside the wall
ratio, each against the goal. "registry ms"
is the CPU the registry process used during the run (``/proc``, its threads): here it shares
the machine's cores with ``pyflyte``, so its work for the checks shows in "builders" too, which
a user's registry, running elsewhere, would not. After each N's rounds, "the registry alone"
sends a first run's requests (a ping, each image's manifest and config blob) one at a time on
one open connection and reads the registry's CPU for them: the part of a first run's builders
that is the registry's own work, printed as a share of flytekit alone's run. ``--rtt MS``
puts the registry and the token server that far away (``rig.LatencyProxy``; each connect waits
the round trip too, ``tests/rig/slow_connect``): where users' registries are, every check pays
it. ``--profile DIR`` also writes a cProfile of each warm N=10 variant's ``pyflyte`` process there. Nothing is asserted:
these are measurements (``_results.record`` notes each ratio next to its goal).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _results import record  # noqa: E402
from _stats import children_cpu, paired_ratio, paired_ratios, threads_cpu  # noqa: E402
from first_check import PASSWORD, Rig  # noqa: E402

TASKS = 20
COUNTS = (1, 3, 10)
WARMUP = 1
RUNS = 9
GOAL = 1.05
PYFLYTE = str(Path(sys.executable).with_name("pyflyte"))
IN_BUILDERS = "FPR_BENCH_IN_BUILDERS"
SECRET = "bench-pull"
TEMPLATE = "bench-pull-template"
NOOP_BASE = "python:3.11-slim"
WARM_UP_OFF = {"FLYTE_PRIVATE_REGISTRY_WARM_UP": "0"}


@dataclass(frozen=True)
class Variant:
    """One way of writing the workflow module; ``expect`` is what every serialized task must carry."""

    name: str
    module: str  # which module text (see _module)
    expect: str  # "none": no secret, no template name; "inline": k8s_pod lists SECRET; "named": pod_template_name


FLYTEKIT = Variant("flytekit alone", "noop", "none")
COLD = Variant("declared, cold", "plain", "none")
WARM = Variant("declared, warm", "plain", "none")
EXPIRED = Variant("declared, token expired", "plain", "none")
HAND = Variant("hand-written", "hand", "inline")
REG_TASK = Variant("@reg.task", "reg_task", "inline")
VIA_NAME = Variant("via_pod_template_name", "via_name", "named")
ACCOUNT = Variant("service account", "account", "none")
#: The variants that share one filled token cache (all but COLD and EXPIRED); all eight are rotated per round.
WARMED = (FLYTEKIT, WARM, HAND, REG_TASK, VIA_NAME, ACCOUNT)
VARIANTS = (COLD, EXPIRED, *WARMED)

#: (section, label, numerator, denominator, goal): the issue sets 1.05x for "a declared registry against
#: flytekit alone" and "@reg.task against the same pod template by hand"; the routes the docs say cost
#: nothing at registration (c) are held to the first bar. The rest only show what a pod template costs.
COMPARISONS = (
    ("a", "declared registry, cold / flytekit alone", COLD, FLYTEKIT, GOAL),
    ("a", "declared registry, token expired / flytekit alone", EXPIRED, FLYTEKIT, GOAL),
    ("a", "declared registry, warm / flytekit alone", WARM, FLYTEKIT, GOAL),
    ("b", "@reg.task / hand-written pod_template", REG_TASK, HAND, GOAL),
    ("b", "@reg.task / flytekit alone", REG_TASK, FLYTEKIT, None),
    ("b", "hand-written pod_template / flytekit alone", HAND, FLYTEKIT, None),
    ("b", "hand-written pod_template / declared, warm", HAND, WARM, None),
    ("c", "via_pod_template_name / flytekit alone", VIA_NAME, FLYTEKIT, GOAL),
    ("c", "service account / flytekit alone", ACCOUNT, FLYTEKIT, GOAL),
)


def _module(kind: str, prefix: str, images: int, ca_file: Path) -> str:
    """The workflow module of one variant: the same 20 tasks and specs, attached differently."""
    builder = f", builder='noop', base_image={NOOP_BASE!r}" if kind == "noop" else ""
    lines = [
        "from flytekit import ImageSpec, task, workflow",
        "from flytekit.constants import CopyFileDetection",
        "",
        f"images = [ImageSpec(name=f'app{{i}}', registry={prefix!r}, source_copy_mode=CopyFileDetection.NO_COPY,"
        f" env={{'I': str(i)}}{builder}) for i in range({images})]",
        "",
    ]
    if kind == "hand":
        lines += [
            "from flytekit import PodTemplate",
            "from kubernetes.client import V1LocalObjectReference, V1PodSpec",
            "",
            f"POD = PodTemplate(pod_spec=V1PodSpec(containers=[],"
            f" image_pull_secrets=[V1LocalObjectReference(name={SECRET!r})]))",
            "",
        ]
    if kind in ("reg_task", "via_name", "account"):
        lines += [
            "from flyte_private_registry import PrivateRegistry",
            "",
            f"reg = PrivateRegistry({prefix!r}, username='alice', password_env='BENCH_PASSWORD',"
            f" ca_file={str(ca_file)!r}, pull_secret={SECRET!r})",
            "",
        ]
    decorator = {
        "hand": "task(container_image=images[{i}], pod_template=POD)",
        "reg_task": "reg.task(container_image=images[{i}])",
        "via_name": f"reg.task(container_image=images[{{i}}], via_pod_template_name={TEMPLATE!r})",
    }.get(kind, "task(container_image=images[{i}])")
    for index in range(TASKS):
        lines += [
            "@" + decorator.format(i=index % images),
            f"def t{index}(x: int) -> int:",
            f"    return x + {index}",
            "",
        ]
    lines += ["@workflow", "def wf(x: int = 1) -> int:", "    y = x"]
    lines += [f"    y = t{index}(x=y)" for index in range(TASKS)]
    lines += ["    return y", ""]
    return "\n".join(lines)


def _tags(prefix: str, images: int) -> list[str]:
    from flytekit.constants import CopyFileDetection
    from flytekit.image_spec.image_spec import ImageSpec

    return [
        ImageSpec(
            name=f"app{i}", registry=prefix, source_copy_mode=CopyFileDetection.NO_COPY, env={"I": str(i)}
        ).image_name()
        for i in range(images)
    ]


def _package(
    project: Path, env: dict[str, str], profile: Path | None = None
) -> tuple[float, float, dict[str, float], str]:
    """Run ``pyflyte package`` once in ``project``: wall and children's CPU seconds, seconds inside, output.

    Through ``_in_builders.py`` (``pyflyte``'s own entry point plus a clock around the builders,
    ``inside``, and one around loading, serializing and packaging, ``window``); with ``profile``,
    the real ``pyflyte`` script under cProfile (then nothing is timed inside).
    """
    arguments = ["--pkgs", "wf", "package", "--force", "--output", "out.tgz"]
    spent = project / "in-builders.json"
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), PYFLYTE, *arguments]
    else:
        command = [sys.executable, str(HERE / "_in_builders.py"), *arguments]
    spent.unlink(missing_ok=True)
    before = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=project, env={**env, IN_BUILDERS: str(spent)}, capture_output=True, text=True, timeout=600
    )
    wall = time.perf_counter() - started
    cpu = children_cpu() - before
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"pyflyte package failed in {project}:\n{output[-4000:]}")
    if profile is not None:
        return wall, cpu, {"inside": 0.0, "window": 0.0}, output
    timed = json.loads(spent.read_text())
    if not timed["window"]:
        raise SystemExit(f"nothing timed around serialize_and_package in {project}: has pyflyte package changed?")
    return wall, cpu, {"inside": timed["wall"], "window": timed["window"]}, output


def _serialized_tasks(package: Path) -> dict[str, tuple[str, list[str], str]]:
    """Each task in a ``pyflyte package`` archive: (image, imagePullSecrets names, pod_template_name)."""
    from flyteidl.admin.task_pb2 import TaskSpec
    from google.protobuf.json_format import MessageToDict

    tasks = {}
    with tarfile.open(package) as archive:
        for member in archive.getmembers():
            if not member.name.endswith("_1.pb"):
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            spec = TaskSpec()
            spec.ParseFromString(handle.read())
            template = spec.template
            pod = MessageToDict(template.k8s_pod.pod_spec) if template.HasField("k8s_pod") else {}
            secrets = [ref.get("name", "") for ref in pod.get("imagePullSecrets", [])]
            image = template.container.image
            if not image and pod:  # a pod template's primary container carries the image
                image = next((c.get("image", "") for c in pod.get("containers", [])), "")
            tasks[template.id.name] = (image, secrets, template.metadata.pod_template_name)
    return tasks


def _verify(variant: Variant, project: Path, prefix: str, output: str) -> tuple[list[str], str]:
    """Why this variant's package is not what it claims to be (empty when it is), and what its first task carries."""
    problems = []
    tasks = {name: found for name, found in _serialized_tasks(project / "out.tgz").items() if ".t" in name}
    image, secrets, template_name = tasks.get("wf.t0", ("", [], ""))
    seen = f"{len(tasks)} tasks; wf.t0: imagePullSecrets={secrets} pod_template_name={template_name!r} image={image}"
    if len(tasks) != TASKS:
        problems.append(f"{len(tasks)} tasks serialized, expected {TASKS}")
    for name, (image, secrets, template_name) in sorted(tasks.items()):
        want_secrets = [SECRET] if variant.expect == "inline" else []
        want_name = TEMPLATE if variant.expect == "named" else ""
        if secrets != want_secrets or template_name != want_name:
            problems.append(f"{name}: imagePullSecrets={secrets} pod_template_name={template_name!r}")
        if variant is FLYTEKIT:
            if image != NOOP_BASE:
                problems.append(f"{name}: image {image!r}, expected the noop base {NOOP_BASE!r}")
        elif not (image.startswith(prefix + "/") and "@sha256:" in image):
            problems.append(f"{name}: image {image!r} is not pinned to a checked digest under {prefix}")
    if variant is not FLYTEKIT and _builds(output):
        problems.append(f"built an image that exists:\n{output[-3000:]}")
    return problems, seen


def _builds(output: str) -> int:
    return output.count("building...") + output.count("Using image")


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _stats(values: list[float]) -> str:
    return f"{min(values):6.2f} {statistics.median(values):6.2f} {max(values):6.2f}"


Rows = dict[Variant, list[tuple[float, float, dict]]]


def _column(rows: Rows, variant: Variant, at: int) -> list[float]:
    """One variant's figure per round (index ``at``: 0 wall, 1 CPU), in round order, ready to pair."""
    return [row[at] for row in rows[variant]]


def _quartiles(values: list[float]) -> str:
    """The middle half of the per-round ratios: how far one round's answer can be trusted."""
    if len(values) < 4:
        return "-"
    low, _, high = statistics.quantiles(values, n=4)
    return f"{low:.2f}-{high:.2f}"


def _attributed(rows: Rows, top: Variant, bottom: Variant, timed: str) -> float:
    """1 + (time ``timed``, top minus bottom) / bottom's wall, median of rounds: the ratio were all else equal.

    ``inside`` (the builders) where the variants differ in nothing else (section a: the same
    module, the registry declared outside it); ``window`` (loading, serializing and packaging
    the module, builders included) where the module differs too (b, c). ``_in_builders.py`` says
    why these are the steadier figures.
    """
    return statistics.median(
        1 + (r[2][timed] - b[2][timed]) / b[0] for r, b in zip(rows[top], rows[bottom], strict=True)
    )


def _fastest(rows: Rows, top: Variant, bottom: Variant) -> float:
    """Best wall over best wall: the run least disturbed by other work on the machine, on each side."""
    return min(r[0] for r in rows[top]) / min(b[0] for b in rows[bottom])


def _registry_floor(rig: Rig, images: list[str], rounds: int = 5) -> float:
    """Registry CPU (ms) a first run's requests cost it, with nothing else running: median of ``rounds``.

    Why: the registry shares this machine's two cores with ``pyflyte``, so its work for the checks
    shows in the builders' time, which a user's registry does on its own machines. A first run
    asks it for a ping and each image's manifest and config blob; here those are sent one at a
    time on one open connection, with a pull token the rig's token server signs directly (its
    work and the handshake are not counted), and the registry's own threads' CPU is read from ``/proc``.
    """
    import http.client
    import ssl

    from flyte_private_registry.distribution._spec import MANIFEST_ACCEPT

    registry = rig.registries[0]
    references = [image.split("/", 1)[1].rpartition(":") for image in images]  # (repository, ":", tag)
    access = [{"type": "repository", "name": repository, "actions": ["pull"]} for repository, _, _ in references]
    token, _, _ = rig.server.issue_token("alice", access)
    headers = {"Authorization": f"Bearer {token}", "Accept": MANIFEST_ACCEPT}
    host, _, port = registry.host.rpartition(":")
    context = ssl.create_default_context(cafile=str(rig.ca.ca_file))
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)

    def get(path: str) -> bytes:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"the registry answered {response.status} to GET {path}: the floor would be wrong")
        return body

    try:
        get("/v2/")  # connected and authorized before the count
        spent = []
        for _ in range(rounds):
            before = threads_cpu(registry.proc.pid)
            get("/v2/")
            for repository, _, tag in references:
                config = json.loads(get(f"/v2/{repository}/manifests/{tag}"))["config"]["digest"]
                get(f"/v2/{repository}/blobs/{config}")
            time.sleep(0.05)  # the registry's last log line and bookkeeping
            spent.append((threads_cpu(registry.proc.pid) - before) * 1000)
        return statistics.median(spent)
    finally:
        connection.close()


def _measure(
    rig: Rig, projects: dict[str, Path], env: dict[str, str], prefix: str, count: int, runs: int, warmup: int
) -> Rows:
    """``warmup`` rounds (not kept), then ``runs`` paired rounds of every variant; the first round is verified.

    Every variant but ``declared, cold`` shares one token cache for this N, filled once before
    the rounds (tokens live 300 s, a round takes ~15 s); ``declared, cold`` gets a new, empty
    cache on every run, ``declared, token expired`` a copy of the shared one without the token
    file. So no variant has to run first in its round, and all eight rotate.
    """
    work = rig.work
    warm_env = {**env, "XDG_CACHE_HOME": str(work / "cache" / f"warm-{count}")}
    _package(projects[WARM.module], warm_env)  # fills the shared cache, outside the timing
    rows: Rows = {variant: [] for variant in VARIANTS}
    for index in range(warmup + runs):
        shift = index % len(VARIANTS)
        for variant in (*VARIANTS[shift:], *VARIANTS[:shift]):
            project = projects[variant.module]
            cold = work / "cache" / f"cold-{count}-{index}"
            round_env = {**env, "XDG_CACHE_HOME": str(cold)} if variant in (COLD, EXPIRED) else warm_env
            if variant is FLYTEKIT:  # the baseline pays for none of our work, the warm-up included
                round_env = {**round_env, **WARM_UP_OFF}
            if variant is EXPIRED:
                _expired_copy(Path(warm_env["XDG_CACHE_HOME"]), cold)
            rig.mark()
            wall, cpu, inside, output = _package(project, round_env)
            shutil.rmtree(cold, ignore_errors=True)
            counts = {**rig.counts(), "builds": _builds(output) if variant is not FLYTEKIT else 0, **inside}
            if index == 0:  # outside the timing: each variant carries its secret as it claims
                problems, seen = _verify(variant, project, prefix, output)
                if problems:
                    raise SystemExit(f"{variant.name} (N={count}) is not what it claims:\n  " + "\n  ".join(problems))
                print(f"  verified N={count} {variant.name:<23} {seen}", flush=True)
            if variant is not FLYTEKIT and counts["builds"]:
                raise SystemExit(f"{variant.name} built an image that exists:\n{output[-3000:]}")
            if variant is EXPIRED and (counts["tokens"], counts["pings"], counts["gets"]) != (1, 0, 0):
                raise SystemExit(f"{variant.name} (N={count}) is not a run with an expired token: {counts}")
            if variant not in (COLD, EXPIRED) and counts["tokens"]:  # a warm variant that asked for a token is not warm
                asked = counts["tokens"]
                raise SystemExit(f"{variant.name} (N={count}) made {asked} token request(s) with a warm cache")
            if index >= warmup:
                rows[variant].append((wall, cpu, counts))
    return rows


def _expired_copy(warm: Path, to: Path) -> None:
    """``warm``'s cache without its bearer tokens: what the next run finds once they have expired."""
    shutil.copytree(warm, to, symlinks=True)
    tokens = to / "flyte-private-registry" / "registry-tokens"
    for token in tokens.glob("token-*.json"):
        token.unlink()


def _profile(projects: dict[str, Path], env: dict[str, str], work: Path, out: Path) -> None:
    """cProfile of each warm variant's ``pyflyte`` process (N=10), and the top of ours by cumulative time."""
    out.mkdir(parents=True, exist_ok=True)
    round_env = {**env, "XDG_CACHE_HOME": str(work / "cache" / "profile")}
    _package(projects[COLD.module], round_env)  # fills the token cache
    for variant in WARMED:
        target = out / f"{variant.module}.prof"
        wall, *_ = _package(projects[variant.module], round_env, profile=target)
        stream = io.StringIO()
        stats = pstats.Stats(str(target), stream=stream)
        total = stats.total_tt  # type: ignore[attr-defined]
        stats.sort_stats("cumulative").print_stats("flyte_private_registry", 8)
        print(f"\nprofile {variant.name}: {wall:.2f} s wall, {total:.2f} s profiled -> {target}")
        print("\n".join(line for line in stream.getvalue().splitlines()[-12:] if line.strip()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"fewer paired rounds (2 instead of {RUNS})")
    parser.add_argument("--rounds", type=int, help=f"paired rounds (default {RUNS}; --quick: 2)")
    parser.add_argument("--profile", type=Path, help="also write a cProfile of each warm N=10 variant here")
    parser.add_argument(
        "--rtt", type=float, default=0.0, help="milliseconds per round trip to the registry and token server"
    )
    args, _ = parser.parse_known_args()
    runs, warmup = (2, 1) if args.quick else (RUNS, WARMUP)
    runs = args.rounds or runs
    work = Path(tempfile.mkdtemp(prefix="fpr-bench-package-"))
    rig = None
    table = []
    floors: list[tuple[int, float, float]] = []
    started = time.perf_counter()
    try:
        rig = Rig(work, 1, rtt=args.rtt / 1000)
        prefix = f"{rig.addresses[0]}/bench"
        for image in _tags(prefix, max(COUNTS)):
            rig.push(rig.direct(image))
        declaration = {
            "prefix": prefix,
            "username": "alice",
            "password_env": "BENCH_PASSWORD",
            "ca_file": str(rig.ca.ca_file),
            "pull_secret": SECRET,
        }
        env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            "PYTHONPYCACHEPREFIX": str(work / "pycache"),
            "FLYTE_PRIVATE_REGISTRIES": json.dumps([declaration]),
            "FLYTE_PRIVATE_REGISTRY_BUILDER": "noop",
            "BENCH_PASSWORD": PASSWORD,
            "DOCKER_HOST": rig.engine.host,
            "DOCKER_CONFIG": str(rig.config),
            **rig.client_env(),
        }
        measured = subprocess.run(
            [sys.executable, "-c", "import flyte_private_registry as m; print(m.__file__)"],
            env=env,
            cwd=work,  # not this checkout: ``-c`` puts the working directory first on sys.path
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"measuring {measured}; {runs} paired rounds after {warmup} warm-up, {os.cpu_count()} CPUs")
        print(f"load average at start (others' work shows in wall time, less in CPU time): {_load()}")
        if args.rtt:
            print(f"registry and token server {args.rtt:g} ms away (a LatencyProxy each)")
        for count in COUNTS:
            projects = {}
            for kind in dict.fromkeys(variant.module for variant in VARIANTS):
                projects[kind] = work / f"{kind}-{count}"
                projects[kind].mkdir()
                (projects[kind] / "wf.py").write_text(_module(kind, prefix, count, rig.ca.ca_file))
            # One warm-up in all (bytecode, page cache): later N only add a 100-line module to compile.
            rows = _measure(rig, projects, env, prefix, count, runs, warmup if count == COUNTS[0] else 0)
            print(f"\npyflyte package, {TASKS} tasks over {count} existing private image(s), {runs} paired rounds")
            print(
                f"  {'':<23} {'wall min/med/max s':>20} {'cpu min/med/max s':>20} {'builders ms':>11}"
                f" {'window ms':>9} {'registry ms':>11}  tokens pings HEADs GETs builds"
            )
            for variant, data in rows.items():
                c = data[-1][2]
                inside = statistics.median(d[2]["inside"] for d in data) * 1000
                window = statistics.median(d[2]["window"] for d in data) * 1000
                served = statistics.median(d[2]["registry_ms"] for d in data)
                print(
                    f"  {variant.name:<23} {_stats([d[0] for d in data]):>20} {_stats([d[1] for d in data]):>20}"
                    f" {inside:>11.1f} {window:>9.1f} {served:>11.1f}  {c['tokens']:>6} {c['pings']:>5}"
                    f" {c['heads']:>5} {c['gets']:>4} {c['builds']:>6}"
                )
            floor = _registry_floor(rig, _tags(prefix, count))
            ratio = 1 + floor / 1000 / statistics.median(_column(rows, FLYTEKIT, 0))
            floors.append((count, floor, ratio))
            print(
                f"  the registry alone, a first run's {2 * count + 1} requests one at a time: {floor:.1f} ms of CPU,"
                f" {(ratio - 1) * 100:.1f} % of flytekit alone's median run"
            )
            scenario = f"a. N={count}: the registry's own work for a first run / flytekit alone"
            note = "registry CPU for the ping, manifests and config blobs, one at a time; here on pyflyte's two cores"
            record("pyflyte_package", scenario, round(ratio, 3), note=note)
            for section, label, top, bottom, goal in COMPARISONS:
                walls = paired_ratios(_column(rows, top, 0), _column(rows, bottom, 0))
                wall, cpu = statistics.median(walls), paired_ratio(_column(rows, top, 1), _column(rows, bottom, 1))
                fastest, middle = _fastest(rows, top, bottom), _quartiles(walls)
                timed = "inside" if section == "a" else "window"
                inside = _attributed(rows, top, bottom, timed)
                table.append((count, section, label, wall, cpu, fastest, middle, inside, goal))
                scenario = f"{section}. N={count}: {label}" + (f" ({args.rtt:g} ms away)" if args.rtt else "")
                note = f"wall; cpu {cpu:.2f}x; wall quartiles {middle}; min/min wall {fastest:.2f}x"
                record("pyflyte_package", scenario, round(wall, 3), goal=goal, note=note)
                what = "the builders" if section == "a" else "loading, serializing and packaging"
                note = f"all else equal: the difference in {what}, over the bottom run's wall"
                record("pyflyte_package", f"{scenario}, in run", round(inside, 3), goal=goal, note=note)
            if args.profile is not None and count == max(COUNTS):
                _profile(projects, env, work, args.profile)
    finally:
        if rig is not None:
            rig.stop()
        shutil.rmtree(work, ignore_errors=True)

    elapsed = time.perf_counter() - started
    print(f"\nratios, median of paired ratios ({runs} rounds; {elapsed:.0f} s; load average at the end {_load()})")
    print(f"  {'N':>2}  {'':<53} {'wall':>6} {'quartiles':>9} {'cpu':>6} {'min/min':>7} {'in run':>8}  goal")
    for count, section, label, wall, cpu, fastest, middle, inside, goal in table:
        target = f"<= {goal}x" if goal is not None else "-"
        print(
            f"  {count:>2}  {section}. {label:<50} {wall:>5.2f}x {middle:>9} {cpu:>5.2f}x {fastest:>6.2f}x"
            f" {inside:>7.3f}x  {target}"
        )
    print(
        "  in run: 1 + the paired difference in the builders (a) or in loading, serializing and packaging"
        " (b, c), over the bottom run's wall: the ratio were everything else equal"
    )
    for count, floor, ratio in floors:
        print(
            f"  {count:>2}  the registry's own work for a first run (ping, manifests, config blobs, one at a time):"
            f" {floor:.1f} ms of its CPU = {ratio:.3f}x of flytekit alone's run"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

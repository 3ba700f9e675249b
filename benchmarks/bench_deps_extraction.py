"""Benchmark 14: dependency extraction from a bot's source, a UiPath project of 500 workflows and a
Robot Framework project of 200 files, against parsing the same files alone.

What is timed is `botwatch.deps.extract(folder)` as `botwatch deps` and the agent's dependency
index run it: walk the folder, read every file, and take its applications, screens, selectors,
URLs, queues, assets, files, libraries and invoked workflows, each with file and line. The
projects are generated in a temporary folder from the corpus (tests/corpus/deps): the
REFramework's and the Object Repository project's workflows copied and renamed (invocations
follow the new names), the Robot Framework robots' suites and resource files the same way.

The references parse the same files and do nothing else: ElementTree's parser (expat, in C) for
the workflows and the Object Repository's descriptors, Robot Framework's own `get_model` and
`get_resource_model` for the robots. Before timing, every generated file is checked to give as
many dependencies and steps as the corpus file it was copied from, so a broken extractor cannot
look fast.

Run alone:  .venv/bin/python benchmarks/bench_deps_extraction.py [--runs N] [--reps N] [--json FILE]
"""

from __future__ import annotations

import gc
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

CORPUS = common.ROOT / "tests" / "corpus" / "deps"
REFRAMEWORK = CORPUS / "uipath" / "UiPath-Services__StudioTemplates" / "REFramework" / "contentFiles" / "any" / \
    "any" / "pt0" / "VisualBasic"
OBJECT_REPOSITORY = CORPUS / "uipath" / "yashbrahmbhatt__uipath" / "uipath-libraries" / "Yash.RBC.Activities"
ROBOTS = {  # folder in the generated project: the corpus robot
    "onboarding": CORPUS / "robot" / "robocorp__example-customer-onboarding-challenge",
    "rpachallenge": CORPUS / "robot" / "robocorp__example-shared-rpachallenge",
    "webstore": CORPUS / "robot" / "robocorp__example-web-store-order-processor",
    "calculator": CORPUS / "robot" / "robocorp__example-windows-calculator",
}
WORKFLOWS = 500
ROBOT_FILES = 200
# 14a's goal is absolute: the extraction measured 4.5x-5.3x ElementTree's parse in C, of which the
# line-numbered tree alone (agent/deps/xmltree.py: expat's callbacks in Python, as ElementTree keeps
# no line numbers) 2.3x-2.6x; a ratio of 3x would leave reading the tree almost nothing. The ratio
# is reported all the same
GOAL_UIPATH_MS_PER_WORKFLOW = 10.0
GOAL_ROBOT = 2.0  # x Robot Framework's parse


def uipath_templates() -> list[Path]:
    """The corpus workflows a copy is made of: the REFramework's, then the Object Repository project's."""
    return [*sorted(REFRAMEWORK.rglob("*.xaml")), *sorted(p for p in OBJECT_REPOSITORY.rglob("*.xaml")
                                                        if ".objects" not in p.parts)]


def robot_templates() -> list[tuple[str, Path]]:
    """(folder in the generated project, corpus file) of every suite and resource file."""
    return [(folder, f) for folder, src in ROBOTS.items() for f in sorted(src.rglob("*"))
            if f.suffix in (".robot", ".resource")]


def _renamer(names: list[str], copy: int):
    """Rewrites each of `names` (file names) as the copy's own name, where a file names another."""
    if not names:
        return lambda text: text
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + ")")
    return lambda text: pattern.sub(lambda m: renamed(m.group(1), copy), text)


def renamed(name: str, copy: int) -> str:
    """`Process.xaml` → `Process_007.xaml`."""
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}_{copy:03d}{dot}{suffix}"


def build_uipath(dest: Path, count: int) -> dict[str, str]:
    """A UiPath project of `count` workflows in `dest`: the REFramework's project.json, the Object
    Repository project's `.objects`, and copies of the templates, renamed by copy. Gives each
    workflow's path (relative to `dest`) → its template's."""
    templates = uipath_templates()
    dest.mkdir(parents=True)
    shutil.copy2(REFRAMEWORK / "project.json", dest / "project.json")
    shutil.copytree(OBJECT_REPOSITORY / ".objects", dest / ".objects")
    origin: dict[str, str] = {}
    names = [t.name for t in templates]
    for i in range(count):
        copy, template = divmod(i, len(templates))
        src = templates[template]
        base = REFRAMEWORK if src.is_relative_to(REFRAMEWORK) else OBJECT_REPOSITORY
        rel = src.relative_to(base).parent / renamed(src.name, copy)
        (dest / rel.parent).mkdir(parents=True, exist_ok=True)
        text = src.read_text(encoding="utf-8-sig")
        (dest / rel).write_text(_renamer(names, copy)(text), encoding="utf-8")
        origin[rel.as_posix()] = src.relative_to(base).parent.joinpath(renamed(src.name, 0)).as_posix()
    return origin


def build_robot(dest: Path, count: int) -> dict[str, str]:
    """A Robot Framework project of `count` files in `dest`: copies of the corpus robots' suites and
    resource files, renamed by copy (resource imports follow). Gives each file → its template's."""
    templates = robot_templates()
    names = sorted({f.name for _folder, f in templates})
    origin: dict[str, str] = {}
    for i in range(count):
        copy, template = divmod(i, len(templates))
        folder, src = templates[template]
        rel = Path(folder) / src.relative_to(ROBOTS[folder]).parent / renamed(src.name, copy)
        (dest / rel.parent).mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(_renamer(names, copy)(src.read_text(encoding="utf-8")), encoding="utf-8")
        origin[rel.as_posix()] = (Path(folder) / src.relative_to(ROBOTS[folder]).parent
                                  / renamed(src.name, 0)).as_posix()
    return origin


def per_file(extraction) -> tuple[Counter, Counter, Counter]:
    return (Counter(d.file for d in extraction.dependencies), Counter(s.file for s in extraction.steps),
            Counter(p.file for p in extraction.problems))


def check(name: str, big, one, origin: dict[str, str]) -> dict:
    """Every generated file gives what its template gives (dependencies, steps, problems), and the
    files that are not copies (project.json, the Object Repository) give the same as in one copy."""
    got, want = per_file(big), per_file(one)
    copied = set(origin)
    for what, g, w in zip(("dependencies", "steps", "problems"), got, want):
        for f in copied:
            if g[f] != w[origin[f]]:
                raise RuntimeError(f"{name}: {f} gave {g[f]} {what}, its template {origin[f]} {w[origin[f]]}")
        rest_g = {f: n for f, n in g.items() if f not in copied}
        rest_w = {f: n for f, n in w.items() if f not in set(origin.values())}
        if rest_g != rest_w:
            raise RuntimeError(f"{name}: the project's other files gave {what} {rest_g}, one copy {rest_w}")
    expected = sum(want[0][origin[f]] for f in copied) + sum(n for f, n in want[0].items()
                                                             if f not in set(origin.values()))
    if len(big.dependencies) != expected or not big.dependencies:
        raise RuntimeError(f"{name}: {len(big.dependencies)} dependencies, expected {expected}")
    return {"dependencies": len(big.dependencies), "steps": len(big.steps), "problems": len(big.problems),
            "files_read": big.files_read, "kinds": dict(sorted(Counter(d.kind for d in big.dependencies).items()))}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def measure(runs: int, reps: int, warmup: int, workflows: int = WORKFLOWS, robot_files: int = ROBOT_FILES) -> dict:
    import xml.etree.ElementTree as ET

    from robot.api import get_model, get_resource_model

    from botwatch.deps import extract
    from botwatch.deps.xmltree import decode, parse

    with tempfile.TemporaryDirectory(prefix="bench-deps-") as tmp:
        base = Path(tmp)
        uipath_dir, robot_dir = base / "uipath" / "Invoices", base / "robot" / "estate-robots"
        t0 = time.monotonic()
        ui_origin = build_uipath(uipath_dir, workflows)
        rf_origin = build_robot(robot_dir, robot_files)
        build_s = time.monotonic() - t0
        ui_one = extract(_fresh(base / "one-uipath", lambda d: build_uipath(d, len(uipath_templates()))))
        rf_one = extract(_fresh(base / "one-robot", lambda d: build_robot(d, len(robot_templates()))))
        ui_checked = check("14a", extract(uipath_dir), ui_one, ui_origin)
        rf_checked = check("14b", extract(robot_dir), rf_one, rf_origin)

        # the workflows; the extractor reads the Object Repository and project.json on top of them
        xml_files = [uipath_dir / f for f in ui_origin]
        objects = [f for f in (uipath_dir / ".objects").rglob("*") if f.is_file()]
        objects_bytes = sum(f.stat().st_size for f in objects)
        suites = [robot_dir / f for f in rf_origin]
        xml_bytes = sum(f.stat().st_size for f in xml_files)
        robot_bytes = sum(f.stat().st_size for f in suites)

        def parse_xml():
            for f in xml_files:
                ET.parse(f)

        def tree():
            for f in xml_files:
                parse(decode(f.read_bytes()))

        def parse_robot():
            for f in suites:
                (get_resource_model if f.suffix == ".resource" else get_model)(f)

        fns = {
            "uipath": lambda: timed(lambda: extract(uipath_dir)),
            "etree": lambda: timed(parse_xml),
            "tree": lambda: timed(tree),
            "robot": lambda: timed(lambda: extract(robot_dir)),
            "rfparse": lambda: timed(parse_robot),
        }
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        per_run: dict[str, list[float]] = {k: [] for k in fns}
        raw: dict[str, list[list[float]]] = {k: [] for k in fns}
        for r in range(runs):
            got = common.interleaved(list(fns), reps, fns, before=gc.collect, start=r * reps)
            for k, v in got.items():
                per_run[k].append(statistics.median(v))
                raw[k].append(v)

    figures = []
    for key, title, m, ref, ref_title, goal, files, checked, size in (
        ("14a", f"`botwatch.deps.extract` of a UiPath project of {workflows:,} workflows (REFramework and Object "
                f"Repository copies, one `.objects`)", "uipath", "etree",
         f"`xml.etree.ElementTree.parse` of the same {len(xml_files):,} workflows alone", None, workflows,
         ui_checked, xml_bytes),
        ("14b", f"`botwatch.deps.extract` of a Robot Framework project of {robot_files:,} suites and resource files",
         "robot", "rfparse", "Robot Framework's `get_model`/`get_resource_model` of the same files alone", GOAL_ROBOT,
         robot_files, rf_checked, robot_bytes),
    ):
        absolute = GOAL_UIPATH_MS_PER_WORKFLOW * workflows if goal is None else None
        if absolute is not None:  # shown as a ratio to this run's reference median
            goal = round(absolute / statistics.median(per_run[ref]), 2)
        fig = common.figure(key=key, title=title, unit="ms", measured_runs=per_run[m], reference_runs=per_run[ref],
                            reference_title=ref_title, goal=goal, reps=reps,
                            samples={"raw_ms": raw[m], "reference_raw_ms": raw[ref]},
                            extra={**checked, "files": files, "bytes": size})
        med, ref_med = fig["measured"]["median"], fig["reference"]["median"]
        fig["notes"] += [
            f"per file: {med / files:.2f} ms extracted, {ref_med / files:.2f} ms parsed alone "
            f"({files:,} files, {size / 1e6:.1f} MB parsed by the reference)",
            f"checked: {checked['dependencies']:,} dependencies and {checked['steps']:,} steps, each generated file "
            f"as many as the corpus file it copies; {checked['problems']} problems reported; by kind: "
            + ", ".join(f"{k} {n:,}" for k, n in checked["kinds"].items()),
        ]
        if absolute is not None:
            fig["passed"] = med <= absolute
            tree_med = statistics.median(per_run["tree"])
            fig["notes"][:0] = [
                f"goal: at most {GOAL_UIPATH_MS_PER_WORKFLOW:g} ms per workflow, {absolute / 1000:g} s for the "
                f"project, absolute (the Goal column is that, as a ratio to this run's reference median); measured "
                f"{med / files:.2f} ms per workflow: {'PASS' if fig['passed'] else 'MISSED'}",
                f"why absolute: the extractor's line-numbered tree alone (`xmltree.parse`, expat's callbacks in "
                f"Python: ElementTree keeps no line numbers) took {tree_med:.0f} ms over the same workflows in the "
                f"same runs, {tree_med / ref_med:.2f}x ElementTree's parse; reading the tree for dependencies and "
                f"steps is the other {max(med - tree_med, 0):.0f} ms (the whole extraction {med / tree_med:.2f}x the tree alone)",
            ]
            fig["extra"]["tree_ms"] = tree_med
            fig["samples"]["tree_raw_ms"] = raw["tree"]
            fig["notes"].append(
                f"the extractor also reads project.json and the Object Repository ({len(objects)} files, "
                f"{objects_bytes / 1e3:.0f} kB), which the reference does not: counted in the measured time")
        figures.append(fig)
    details = ["", f"Set-up: the two projects were generated from tests/corpus/deps in {build_s:.1f} s; a garbage "
               f"collection before each repetition, not timed."]
    return {"benchmark": "deps_extraction", "figures": figures, "details": details,
            "settings": {"runs": runs, "reps": reps, "warmup": warmup, "workflows": workflows,
                         "robot_files": robot_files}}


def _fresh(dest: Path, build) -> Path:
    build(dest)
    return dest


def _options(p) -> None:
    p.add_argument("--workflows", type=int, default=WORKFLOWS, help="workflows in the UiPath project")
    p.add_argument("--robot-files", type=int, default=ROBOT_FILES, help="files in the Robot Framework project")


def main(argv: list[str] | None = None) -> int:
    return common.bench_main(__doc__, measure, argv, runs=7, reps=3, warmup=1, extra=_options)


if __name__ == "__main__":
    sys.exit(main())

"""The drift score of a page (HTML or accessibility tree) against its baseline, and what changed.

1. Matching. The elements of the baseline and of the snapshot are paired in passes, the
   strictest first, each pass pairing what the earlier ones left in document order: the same
   element everywhere (tag, id, name, classes, text, attributes, tag path); the same id; the
   same name at the same place; the same place and text (classes changed); the same place and
   classes (text changed); the same element at another place (moved). What is left of the
   baseline was removed, what is left of the snapshot was added.

2. What changed in a pair, weighted (a target: an element a declared selector matched in the
   baseline; churn: any other element):

       change            target   churn
       id renamed         0.70     0.50
       name renamed       0.70     0.50
       attributes         0.50     0.30     (type, role, aria-label, data-testid, title, ...)
       moved              0.50     0.30     (another tag path, or another parent)
       text               0.40     0.10     (digits never count: dates, counters)
       classes            0.15     0.10     (colours and themes are mostly classes)
       removed / added    1.00     1.00

   Several changes of one element combine as 1 - (1 - w1)(1 - w2)...; a target also takes half
   the change of its nearest changed ancestor (below <body>), since selectors go through them.

3. Each declared selector s scores p_s, the highest of: its target's change, and the selector
   itself: 1.0 when it now matches nothing, 0.7 when it matches several elements (each unless
   the baseline was the same: a selector that never matched this kind of snapshot is no drift).

       targets  S_t = 1 - prod(1 - p_s)                  (any broken selector is enough)
       churn    S_c = sum of churn changes / (baseline elements + added elements)
       score        = 1 - (1 - S_t) * (1 - S_c)           in [0, 1]

   A new banner, a changed date or colours move S_c by a few hundredths; a renamed, moved or
   removed target, or a selector that no longer matches exactly one element, puts the score
   at 0.5 or above. Without declared selectors the score is S_c: the share of the page that
   changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dom import Fingerprint, path_ids

TARGET = {"id": 0.70, "name": 0.70, "attrs": 0.50, "moved": 0.50, "text": 0.40, "cls": 0.15}
CHURN = {"id": 0.50, "name": 0.50, "attrs": 0.30, "moved": 0.30, "text": 0.10, "cls": 0.10}
MISSING = 1.0  # a selector that matches nothing
SEVERAL = 0.7  # a selector that matches several elements (and did not match as many before)
ANCESTOR = 0.5  # share of an ancestor's change a target takes
MAX_CHANGES = 20
MAX_TARGETS = 50  # elements remembered per selector in a baseline


@dataclass
class SelectorState:
    """A declared selector against one snapshot."""

    text: str
    count: int
    targets: list[int] = field(default_factory=list)  # matched element indexes (at most MAX_TARGETS)


@dataclass
class DomDiff:
    score: float
    target_score: float
    churn_score: float
    added: int
    removed: int
    changed: int
    moved: int
    changes: list[str]
    selector_scores: dict[str, float]


def match(base: Fingerprint, cur: Fingerprint, paths: tuple[list[int], list[int]] | None = None
          ) -> tuple[list[int], list[int], list[bool]]:
    """(b2c, c2b, exact): the index of each element's counterpart, -1 where there is none, and
    whether each baseline element's pair is identical. `paths`: path_ids(base, cur) if known."""
    nb, nc = len(base), len(cur)
    b2c, c2b = [-1] * nb, [-1] * nc
    bp, cp = paths if paths is not None else path_ids(base, cur)
    B = (base.tag, base.id, base.name, base.cls, base.text, base.attrs, bp)
    C = (cur.tag, cur.id, cur.name, cur.cls, cur.text, cur.attrs, cp)
    # the first pass, identical elements, over every element: keys built in C by zip
    pool: dict[tuple, list[int]] = {}
    for i, k in enumerate(zip(*B)):
        got = pool.get(k)
        if got is None:
            pool[k] = [i]
        else:
            got.append(i)
    for lst in pool.values():
        if len(lst) > 1:
            lst.reverse()
    get = pool.get
    for j, k in enumerate(zip(*C)):
        lst = get(k)
        if lst:
            i = lst.pop()
            b2c[i] = j
            c2b[j] = i
    exact = [x >= 0 for x in b2c]
    # fields of each later pass (indexes into B / C) and a field that must not be empty
    passes = (
        ((0, 1), 1),
        ((0, 2, 6), 2),
        ((0, 6, 4, 5), None),
        ((0, 6, 3, 5), None),
        ((0, 1, 2, 3, 4, 5), None),
    )
    b_left = [i for i in range(nb) if b2c[i] < 0]
    c_left = [j for j in range(nc) if c2b[j] < 0]
    for fields_, required in passes:
        if not b_left or not c_left:
            break
        bcols = [B[f] for f in fields_]
        ccols = [C[f] for f in fields_]
        pool: dict[tuple, list[int]] = {}
        if required is None:
            for i in b_left:
                pool.setdefault(tuple(col[i] for col in bcols), []).append(i)
        else:
            req = B[required]
            for i in b_left:
                if req[i]:
                    pool.setdefault(tuple(col[i] for col in bcols), []).append(i)
        if pool:
            for lst in pool.values():
                lst.reverse()
            creq = C[required] if required is not None else None
            for j in c_left:
                if creq is not None and not creq[j]:
                    continue
                lst = pool.get(tuple(col[j] for col in ccols))
                if lst:
                    i = lst.pop()
                    b2c[i] = j
                    c2b[j] = i
        b_left = [i for i in b_left if b2c[i] < 0]
        c_left = [j for j in c_left if c2b[j] < 0]
    return b2c, c2b, exact


def _aspects(base: Fingerprint, cur: Fingerprint, i: int, j: int, b2c: list[int], paths) -> list[str]:
    out = []
    if base.id[i] != cur.id[j]:
        out.append("id")
    if base.name[i] != cur.name[j]:
        out.append("name")
    if base.attrs[i] != cur.attrs[j]:
        out.append("attrs")
    moved = paths[0][i] != paths[1][j]
    if not moved:
        bpar, cpar = base.parent[i], cur.parent[j]
        if bpar >= 0 and cpar >= 0 and b2c[bpar] >= 0 and b2c[bpar] != cpar:
            moved = True
    if moved:
        out.append("moved")
    if base.text[i] != cur.text[j]:
        out.append("text")
    if base.cls[i] != cur.cls[j]:
        out.append("cls")
    return out


def _combine(aspects: list[str], weights: dict[str, float]) -> float:
    keep = 1.0
    for a in aspects:
        keep *= 1.0 - weights[a]
    return 1.0 - keep


def _what(base: Fingerprint, cur: Fingerprint, i: int, j: int, aspects: list[str]) -> str:
    bits = []
    for a in aspects:
        if a == "id":
            bits.append(f"id {base.id[i]!r} -> {cur.id[j]!r}")
        elif a == "name":
            bits.append(f"name {base.name[i]!r} -> {cur.name[j]!r}")
        elif a == "attrs":
            bits.append(f"attributes {base.attrs[i].rstrip(';')!r} -> {cur.attrs[j].rstrip(';')!r}")
        elif a == "moved":
            bits.append(f"moved {base.tail(i)} -> {cur.tail(j)}")
        elif a == "text":
            bits.append(f"text {base.text[i]!r} -> {cur.text[j]!r}")
        elif a == "cls":
            bits.append(f"classes {base.cls[i]!r} -> {cur.cls[j]!r}")
    return ", ".join(bits)


def selector_penalty(count: int, baseline_count: int | None) -> float:
    """A selector that now matches nothing, or several elements, where the baseline differed."""
    if count == 0:
        return MISSING if baseline_count != 0 else 0.0
    if count > 1 and baseline_count != count:
        return SEVERAL
    return 0.0


def compare_dom(base: Fingerprint, base_sel: dict[str, SelectorState], cur: Fingerprint,
                cur_sel: dict[str, SelectorState]) -> DomDiff:
    """Score `cur` against `base`; the selector states are the same declared selectors on each."""
    paths = path_ids(base, cur)
    b2c, c2b, exact = match(base, cur, paths)
    own: dict[int, tuple[float, list[str]]] = {}  # baseline index -> (target change, aspects) for targets/ancestors

    def own_change(i: int) -> tuple[float, list[str]]:
        got = own.get(i)
        if got is None:
            j = b2c[i]
            if j < 0:
                got = (1.0, ["removed"])
            else:
                aspects = _aspects(base, cur, i, j, b2c, paths)
                got = (_combine(aspects, TARGET), aspects)
            own[i] = got
        return got

    changes: list[str] = []
    targets: set[int] = set()
    selector_scores: dict[str, float] = {}
    keep = 1.0
    for name, cs in cur_sel.items():
        bs = base_sel.get(name)
        p = selector_penalty(cs.count, bs.count if bs else None)
        if p > 0:
            was = f" (baseline: {bs.count})" if bs is not None else ""
            changes.append(f"selector {name} ({cs.text}) matches {cs.count} elements{was}"
                           if cs.count != 1 else f"selector {name} ({cs.text}) matches 1 element{was}")
        for t in (bs.targets if bs else []):
            if t >= len(base):
                continue
            targets.add(t)
            c, aspects = own_change(t)
            if c > 0:
                changes.append(f"{name}: {base.describe(t)} " + (
                    "removed" if aspects == ["removed"] else _what(base, cur, t, b2c[t], aspects)))
            # the nearest changed ancestor below <body>
            a, depth_guard = base.parent[t], 0
            while a >= 0 and depth_guard < 200:
                depth_guard += 1
                if base.tag[a] in ("html", "body") or base.parent[a] < 0:
                    break
                ac, aaspects = own_change(a)
                if ac > 0:
                    if ANCESTOR * ac > c:
                        changes.append(f"{name}: its ancestor {base.describe(a)} " + (
                            "removed" if aaspects == ["removed"] else _what(base, cur, a, b2c[a], aaspects)))
                    c = max(c, ANCESTOR * ac)
                    break
                a = base.parent[a]
            p = max(p, c)
        selector_scores[name] = round(p, 4)
        keep *= 1.0 - p
    target_score = 1.0 - keep

    # churn: every other element
    churn = 0.0
    added = removed = changed = moved = 0
    ex_added: list[int] = []
    ex_removed: list[int] = []
    ex_changed: list[str] = []
    bparent, cparent = base.parent, cur.parent
    for i in range(len(base)):
        j = b2c[i]
        if j < 0:
            removed += 1
            if i not in targets:
                churn += 1.0
                if len(ex_removed) < 3:
                    ex_removed.append(i)
            continue
        if exact[i]:
            bpar, cpar = bparent[i], cparent[j]
            if bpar < 0 or cpar < 0 or b2c[bpar] < 0 or b2c[bpar] == cpar:
                continue
        aspects = _aspects(base, cur, i, j, b2c, paths)
        if not aspects:
            continue
        if "moved" in aspects:
            moved += 1
        if aspects != ["moved"]:
            changed += 1
        if i not in targets:
            churn += _combine(aspects, CHURN)
            if len(ex_changed) < 3:
                ex_changed.append(f"{base.describe(i)} {_what(base, cur, i, j, aspects)}")
    for j in range(len(cur)):
        if c2b[j] < 0:
            added += 1
            churn += 1.0
            if len(ex_added) < 3:
                ex_added.append(j)
    union = len(base) + added
    churn_score = min(1.0, churn / union) if union else 0.0
    if added:
        changes.append(f"{added} element(s) added, e.g. " + ", ".join(cur.describe(j) for j in ex_added))
    if removed:
        changes.append(f"{removed} element(s) removed" + (
            ", e.g. " + ", ".join(base.describe(i) for i in ex_removed) if ex_removed else ""))
    if changed or moved:
        changes.append(f"{changed} element(s) changed, {moved} moved" + (
            ", e.g. " + "; ".join(ex_changed) if ex_changed else ""))
    score = 1.0 - (1.0 - target_score) * (1.0 - churn_score)
    return DomDiff(round(min(1.0, max(0.0, score)), 4), round(target_score, 4), round(churn_score, 4), added,
                   removed, changed, moved, changes[:MAX_CHANGES], selector_scores)

"""An estate file's failure patterns, read on their own.

A client classifying a failed run (`botwatch run`, the SDK, the Robot Framework listener) needs
the estate's `failure_patterns` and nothing else of the file. Validating the whole estate costs
more than the bot's interpreter start (the config models, pydantic) on every failed run; this
reads the YAML, builds only the `failure_patterns` value and checks each pattern with the rules
the estate's validation applies (core.classify.pattern_problem), naming FILE:LINE of a bad one.
"""

from __future__ import annotations

from typing import Any

from ..core.classify import flag, pattern_problem


class PatternsError(ValueError):
    """The file or one of its patterns cannot be used; the message is `FILE:LINE: problem`."""


def read_failure_patterns(path: str) -> list[dict[str, Any]]:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise PatternsError(f"{path}:0: cannot read the estate file: {exc}") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        top = loader.get_single_node()
        if top is None:
            return []
        if not isinstance(top, yaml.MappingNode):
            raise PatternsError(f"{path}:1: the estate file must be a mapping with 'agent' and 'bots'")
        found = [v for k, v in top.value if isinstance(k, yaml.ScalarNode) and k.value == "failure_patterns"]
        if not found:
            return []
        node = found[-1]
        patterns = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PatternsError(f"{path}:{mark.line + 1 if mark else 1}: YAML syntax error: "
                            f"{getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()
    if patterns is None:
        return []
    if not isinstance(patterns, list):
        raise PatternsError(f"{path}:{node.start_mark.line + 1}: failure_patterns: must be a list of patterns")
    for i, item in enumerate(patterns):
        problem = pattern_problem(item)
        if problem:
            raise PatternsError(f"{path}:{node.value[i].start_mark.line + 1}: failure_patterns[{i}]: {problem}")
        if "ignore_case" in item:
            item["ignore_case"] = flag(item["ignore_case"])  # 'no' is false, as the validation reads it
    return patterns

"""The configuration reference, docs/configuration.md, generated from the config models.

Every key of ``common.config.Settings`` and its sections, with its YAML path, type,
default and meaning. The meaning is the field's ``description``, the type comes from
its annotation and constraints (a format checked by a validator is the validator's
docstring), so the page cannot drift from what ``load_settings`` accepts:
``tests/test_docs.py`` fails when the committed page differs from this output.

    python -m common.config_reference                 # print the page
    python -m common.config_reference --write PATH    # write it (make docs)
    python -m common.config_reference --check PATH    # exit 1 when PATH is stale
"""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import AfterValidator, BaseModel
from pydantic.fields import FieldInfo

from .config import Settings, parse_settings
from .config_sections import MIB

__all__ = ["DOCS_PATH", "ENVIRONMENT", "Key", "Section", "keys", "main", "render", "sections"]

DOCS_PATH = Path("docs/configuration.md")

_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}
_BOUNDS = ((annotated_types.Ge, "ge", "≥"), (annotated_types.Gt, "gt", ">"),
           (annotated_types.Le, "le", "≤"), (annotated_types.Lt, "lt", "<"))


@dataclass(frozen=True, slots=True)
class Key:
    """One documented key: its YAML path, type, default and meaning."""

    path: str
    type: str
    default: str
    meaning: str


@dataclass(frozen=True, slots=True)
class Section:
    """One model: where it sits in the file, its docstring and its keys."""

    path: str
    model: type[BaseModel]
    keys: tuple[Key, ...]


def _number(value: float) -> str:
    if isinstance(value, int) and value >= MIB and value % MIB == 0:
        return f"{value:_} ({value // MIB} MiB)".replace("_", ",")
    if isinstance(value, int) and value >= 10_000:
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _constraints(metadata: list[Any]) -> list[str]:
    """``ge=0``, a length and a format, as readable bounds."""
    parts: list[str] = []
    for item in metadata:
        if isinstance(item, FieldInfo):
            parts += _constraints(item.metadata)
        for kind, attribute, sign in _BOUNDS:
            if isinstance(item, kind):
                bound = getattr(item, attribute)
                parts.append(f"{sign} 2^63−1" if bound == (1 << 63) - 1
                             else f"{sign} {_number(bound)}")
    lengths = {type(item): item for item in metadata
               if isinstance(item, annotated_types.MinLen | annotated_types.MaxLen)}
    shortest = lengths.get(annotated_types.MinLen)
    longest = lengths.get(annotated_types.MaxLen)
    if isinstance(longest, annotated_types.MaxLen):
        low = shortest.min_length if isinstance(shortest, annotated_types.MinLen) else 0
        parts.append(f"of {low}-{longest.max_length} characters")
    elif isinstance(shortest, annotated_types.MinLen):
        parts.append("non-empty" if shortest.min_length == 1
                     else f"of at least {shortest.min_length} characters")
    return parts


def _formats(metadata: list[Any]) -> list[str]:
    """What the field's validators check, from their docstrings."""
    return [item.func.__doc__ for item in metadata
            if isinstance(item, AfterValidator) and item.func.__doc__]


def _type(annotation: Any, metadata: list[Any]) -> str:
    """The annotation in YAML terms: ``integer ≥ 0``, ``list of mappings``, ``… or null``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        return _type(base, [*metadata, *extra])
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(annotation) if arg is not type(None)]
        text = " or ".join(_type(arg, metadata) for arg in options)
        return f"{text}, or null" if len(options) < len(get_args(annotation)) else text
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in get_args(annotation))
    if origin is tuple:
        return f"list of {_type(get_args(annotation)[0], [])}s"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    text = " ".join([_SCALARS.get(annotation, str(annotation)),
                     ", ".join(_constraints(metadata))]).strip()
    formats = _formats(metadata)
    return f"{text}: {'; '.join(formats)}" if formats else text


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return "see below"
    value = field.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return _number(value)
    if value == ():
        return "`[]`"
    return f"`{value}`"


def _submodel(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The model a field holds, and whether it is a list of them."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _submodel(arg)
            if found is not None:
                return found
        return None
    if origin is tuple:
        inner = _submodel(get_args(annotation)[0])
        return (inner[0], True) if inner is not None else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None


def sections(model: type[BaseModel] = Settings, path: str = "") -> Iterator[Section]:
    """``model`` and every model under it, depth first, in the order the fields are written."""
    rows: list[Key] = []
    below: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        full = f"{path}.{key}" if path else key
        meaning = " ".join((field.description or "").split())
        if not meaning:
            raise ValueError(f"{model.__name__}.{name} has no description")
        rows.append(Key(full, _type(field.annotation, list(field.metadata)),
                        _default(field), meaning))
        inner = _submodel(field.annotation)
        if inner is not None:
            below.append((inner[0], f"{full}[]" if inner[1] else full))
    yield Section(path, model, tuple(rows))
    for inner_model, inner_path in below:
        yield from sections(inner_model, inner_path)


def keys() -> list[Key]:
    """Every documented key, depth first."""
    return [key for section in sections() for key in section.keys]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


_SMALLEST = """\
experiments:
  - name: churn
    endpoint: bandit-sim
    variants: [{name: Variant1}, {name: Variant2}]
    policy: {type: thompson}
"""

_HEADER = """\
# Configuration reference

<!-- Generated by `python -m common.config_reference --write docs/configuration.md`
     (`make docs`) from the models in common/config.py and common/config_sections.py.
     Do not edit: tests/test_docs.py fails when this page and the models differ. -->

`bandit-router serve --config FILE`, `bandit-router ingest --config FILE` and
`bandit-router check-config FILE` read one YAML file. Unknown keys are refused, numbers
must be finite and of the right kind (`"20"` is not an integer), and every problem is
reported at once, one `path: problem` line each (`check-config` exits 2). A policy is
checked by building it over the experiment's variants, so its errors are located too
(`experiments[0].policy.epsilon: must be in [0, 1], got 2.0`). Secrets never come from
this file: see [Environment](#environment).

The smallest file (every other key takes its default; [below](#every-default) it is
shown with every default filled in):

```yaml
{smallest}```

A path ending in `[]` is a list item (`experiments[].reward.max` is the `max` under
`reward` in each experiment). "see below" means a section whose own keys have their
defaults.

"""

# The environment is not a model: what each variable does, for the same page.
ENVIRONMENT: tuple[tuple[str, str, str], ...] = (
    ("`BANDIT_ROUTER_WEBHOOK_SECRET`", "`serve` on `memory://`, `ingest`",
     "The HMAC secret of `POST /v1/rewards`; two, comma-separated, while a secret is "
     "rotated (either verifies). Unset or empty: rewards are accepted unsigned and a "
     "warning is logged once."),
    ("`BANDIT_ROUTER_ADMIN_TOKEN`", "`serve`",
     "The bearer token of the admin API (with its `/stats` and `/timeline`); unset: those "
     "answer 403."),
    ("`BANDIT_ROUTER_CALLER_KEYS`", "`serve`",
     "With `auth.mode: sigv4`: caller keys as JSON, `{name: {access_key_id, "
     "secret_access_key, experiments}}` (`experiments`: a list of experiment names, or "
     "`\"*\"` for every one), beside or instead of `auth.keys_file`; an access key id "
     "must not be in both."),
    ("`AWS_REGION`, `AWS_DEFAULT_REGION`", "`serve`, `ingest`",
     "The region of the SageMaker endpoints (the first one set, else the AWS config "
     "file's `region`); `serve` stops with one line when an experiment uses "
     "`backend: sagemaker` and there is none."),
    ("`AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`, `AWS_ENDPOINT_URL`", "`serve`",
     "Where InvokeEndpoint goes instead of AWS's regional URL (a VPC endpoint, a local "
     "simulator)."),
    ("`AWS_ENDPOINT_URL_SAGEMAKER`", "`ingest`, `serve` on `memory://`",
     "Where the weight pusher's DescribeEndpoint and UpdateEndpointWeightsAndCapacities go "
     "instead of AWS."),
    ("`AWS_ENDPOINT_URL_S3`", "`ingest`, `serve` on `memory://`, `replay`",
     "Where the S3 archive is written and read instead of AWS."),
    ("AWS credentials", "`serve`, `ingest`, `replay`",
     "boto3's default chain: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, a profile, web "
     "identity (IRSA on EKS), a container or instance role; see [aws.md](aws.md)."),
)


def render() -> str:
    """The whole page, as committed in docs/configuration.md."""
    parts = [_HEADER.replace("{smallest}", _SMALLEST)]
    for section in sections():
        title = section.path or "Top level"
        doc = " ".join((section.model.__doc__ or "").split("\n\n")[0].split())
        doc = doc.replace("``", "`")
        parts.append(f"## {title}\n\n{doc}\n\n| key | type | default | meaning |\n"
                     "| --- | --- | --- | --- |\n")
        parts.append("".join(f"| `{key.path}` | {_cell(key.type)} | {_cell(key.default)} "
                             f"| {_cell(key.meaning)} |\n" for key in section.keys))
        parts.append("\n")
    parts.append("## Environment\n\nSecrets and AWS settings come from the environment, "
                 "read once at start-up; empty values count as unset.\n\n"
                 "| variable | read by | meaning |\n| --- | --- | --- |\n")
    parts.append("".join(f"| {name} | {who} | {meaning} |\n"
                         for name, who, meaning in ENVIRONMENT))
    full = parse_settings(yaml.safe_load(_SMALLEST)).model_dump(mode="json", by_alias=True)
    parts.append("\n## Every default\n\nThe smallest file above, as `load_settings` reads it:"
                 "\n\n```yaml\n" + yaml.safe_dump(full, sort_keys=False) + "```\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    """The command line: print, ``--write PATH`` or ``--check PATH``."""
    parser = argparse.ArgumentParser(prog="python -m common.config_reference",
                                     description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", type=Path, nargs="?", const=DOCS_PATH, metavar="PATH",
                        help=f"write the page to PATH ({DOCS_PATH})")
    action.add_argument("--check", type=Path, nargs="?", const=DOCS_PATH, metavar="PATH",
                        help=f"exit 1 when PATH ({DOCS_PATH}) differs from the generated page")
    args = parser.parse_args(argv)
    page = render()
    if args.write is not None:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(page, encoding="utf-8")
    elif args.check is not None:
        current = args.check.read_text(encoding="utf-8") if args.check.is_file() else None
        if current != page:
            print(f"{args.check}: out of date with the config models; run `make docs`",
                  file=sys.stderr)
            return 1
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())

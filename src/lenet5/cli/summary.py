"""`lenet5 summary --model NAME`: a model's layers and parameter counts, without data."""

from __future__ import annotations

from ..zoo.models import MODELS, get_spec


def register(subparsers) -> None:
    parser = subparsers.add_parser("summary", help="print a model's layers and parameter counts")
    parser.add_argument("--model", default="lenet5", help=f"one of: {', '.join(MODELS)}")
    parser.set_defaults(handler=summary_command)


def summary_command(args) -> int:
    from ..zoo.models import build_model

    spec = get_spec(args.model)
    model = build_model(args.model)
    print(f"{spec.name}: {spec.description}")
    print(f"input: {spec.input_shape} ({spec.preprocessing.method}, pad {spec.preprocessing.pad})\n")
    model.summary()
    return 0
